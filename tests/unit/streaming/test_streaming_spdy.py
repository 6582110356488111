"""SPDY/3.1 framing: bytes a real client (crictl, client-go over spdystream) sent, and a client
and server of ours talking through memory."""

from __future__ import annotations

import hashlib
import struct

import pytest

from cri.streaming import spdy

# `echo hi | crictl exec -i CID cat`, as read by the server: SYN_STREAMs for error, stdin,
# stdout and stderr (one zlib context across the four header blocks), then stdin's data and FIN.
CRICTL_EXEC = bytes.fromhex(
    "800300010000002a0000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a5a54945f"
    "04000000ffff800300010000001700000003000000000000c22e555c92929907000000ffff80030001000000"
    "1900000005000000000000c22ac5565c92925f5a02000000ffff800300010000001500000007000000000000"
    "c229975a5404000000ffff000000030000000368690a0000000301000000"
)


def test_the_dictionary_is_spdy3s() -> None:
    assert len(spdy.DICTIONARY) == 1423
    # sha256 of spdystream's headerDictionary (spdy/dictionary.go)
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == (
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02")


def test_what_crictl_sends_parses() -> None:
    server = spdy.Connection(client=False)
    events = server.receive_data(CRICTL_EXEC)
    opened = [e for e in events if isinstance(e, spdy.StreamOpened)]
    assert [(e.stream_id, e.header("streamType")) for e in opened] == [
        (1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")]
    assert [e for e in events if isinstance(e, spdy.DataReceived)] == [
        spdy.DataReceived(3, b"hi\n", fin=False), spdy.DataReceived(3, b"", fin=True)]


def test_byte_at_a_time_gives_the_same_events() -> None:
    whole = spdy.Connection(client=False).receive_data(CRICTL_EXEC)
    server = spdy.Connection(client=False)
    events: list[spdy.Event] = []
    for i in range(len(CRICTL_EXEC)):
        events += server.receive_data(CRICTL_EXEC[i:i + 1])
    assert events == whole


def pair() -> tuple[spdy.Connection, spdy.Connection]:
    return spdy.Connection(client=True), spdy.Connection(client=False)


def test_streams_replies_data_and_half_close() -> None:
    client, server = pair()
    sid = client.open_stream({"streamType": ["stdout"], "X": ["a", "b"]})
    assert sid == 1 and client.open_stream({"streamType": ["stdin"]}) == 3
    opened = server.receive_data(client.data_to_send())
    assert opened[0] == spdy.StreamOpened(1, {"streamtype": ["stdout"], "x": ["a", "b"]},
                                          fin=False)
    server.reply(1)
    server.send_data(1, b"out" * 100_000)
    server.send_data(1, b"", fin=True)
    events = client.receive_data(server.data_to_send())
    assert isinstance(events[0], spdy.StreamReplied)
    data = b"".join(e.data for e in events if isinstance(e, spdy.DataReceived))
    assert data == b"out" * 100_000
    assert events[-1] == spdy.DataReceived(1, b"", fin=True)
    # the server's half is closed: more data is dropped, not sent
    server.send_data(1, b"late")
    assert server.data_to_send() == b""
    client.send_data(3, b"in", fin=True)
    assert server.receive_data(client.data_to_send()) == [spdy.DataReceived(3, b"in", True)]


def test_ping_from_the_peer_is_echoed_and_own_is_not() -> None:
    client, server = pair()
    ping_id = client.ping()
    assert server.receive_data(client.data_to_send()) == [spdy.PingReceived(ping_id)]
    assert client.receive_data(server.data_to_send()) == [spdy.PingReceived(ping_id)]
    assert client.data_to_send() == b""  # its own ping came back: not echoed again


def test_reset_goaway_and_ignored_frames() -> None:
    client, server = pair()
    sid = client.open_stream({"streamType": ["data"]})
    server.receive_data(client.data_to_send())
    client.reset(sid)
    settings = struct.pack(">HHI", 0x8003, spdy.FrameType.SETTINGS, 4) + b"\0\0\0\0"
    window = struct.pack(">HHI", 0x8003, spdy.FrameType.WINDOW_UPDATE, 8) + b"\0" * 8
    events = server.receive_data(client.data_to_send() + settings + window)
    assert events == [spdy.StreamReset(sid, spdy.RstStatus.CANCEL)]
    assert not server.is_open(sid)
    server.go_away()
    assert client.receive_data(server.data_to_send()) == [spdy.GoAwayReceived(1, 0)]


@pytest.mark.parametrize("frame", [
    struct.pack(">HHI", 0x8002, 1, 0),  # SPDY/2
    struct.pack(">HHI", 0x8003, 1, 10) + struct.pack(">IIBB", 2, 0, 0, 0),  # even id from client
    struct.pack(">HHI", 0x8003, 6, 3) + b"\0\0\0",  # short PING
])
def test_protocol_errors_end_with_goaway(frame: bytes) -> None:
    server = spdy.Connection(client=False)
    with pytest.raises(spdy.ProtocolError):
        server.receive_data(frame)
    out = server.data_to_send()
    assert struct.unpack(">HH", out[:4]) == (0x8003, spdy.FrameType.GOAWAY)
    assert struct.unpack(">I", out[-4:])[0] == spdy.GoAwayStatus.PROTOCOL_ERROR


def test_a_bad_header_block_is_a_protocol_error() -> None:
    body = struct.pack(">IIBB", 1, 0, 0, 0) + b"not zlib"
    frame = struct.pack(">HHI", 0x8003, 1, len(body)) + body
    with pytest.raises(spdy.ProtocolError):
        spdy.Connection(client=False).receive_data(frame)
