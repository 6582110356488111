"""WebSocket framing (RFC 6455) for the streaming server."""

from __future__ import annotations

import struct

import pytest

from cri.streaming import websocket as ws


def test_accept_key_of_rfc6455_example() -> None:
    assert ws.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_masked_client_frames_of_every_length_reach_the_server() -> None:
    client, server = ws.Connection(client=True), ws.Connection(client=False)
    for n in (0, 1, 125, 126, 65535, 65536, 300_000):
        client.send_message(bytes(range(256)) * (n // 256) + b"x" * (n % 256))
        data = client.data_to_send()
        assert data[1] & 0x80  # masked
        (message,) = server.receive_data(data)
        assert isinstance(message, ws.Message) and len(message.data) == n and message.binary


def test_server_frames_are_unmasked_and_text_is_flagged() -> None:
    server = ws.Connection(client=False)
    server.send_message(b"hi", binary=False)
    assert server.data_to_send() == b"\x81\x02hi"


def test_fragments_with_a_ping_between() -> None:
    client, server = ws.Connection(client=True), ws.Connection(client=False)
    client._frame(0x02, b"ab")  # FIN set: patched below into a first fragment
    first = bytearray(client.data_to_send())
    first[0] &= 0x7F
    client._frame(ws.Opcode.PING, b"p")
    ping = client.data_to_send()
    client._frame(ws.Opcode.CONTINUATION, b"cd")
    last = client.data_to_send()
    events = server.receive_data(bytes(first) + ping + last)
    assert events == [ws.Ping(b"p"), ws.Message(b"abcd", binary=True)]
    assert server.data_to_send() == b"\x8a\x01p"  # the pong


def test_closing_handshake() -> None:
    client, server = ws.Connection(client=True), ws.Connection(client=False)
    client.close(1000, "bye")
    assert server.receive_data(client.data_to_send()) == [ws.Closed(1000, "bye")]
    reply = server.data_to_send()
    assert reply[:4] == b"\x88\x02" + struct.pack(">H", 1000)
    assert server.close_sent
    server.send_message(b"after")  # nothing may follow a close
    assert server.data_to_send() == b""


@pytest.mark.parametrize("frame", [
    b"\x82\x02hi",  # unmasked from a client
    b"\xc2\x80\0\0\0\0",  # RSV1 without an extension
    b"\x09\x80\0\0\0\0",  # fragmented ping
    b"\x80\x80\0\0\0\0",  # continuation with nothing to continue
    b"\x82\xff" + struct.pack(">Q", ws.MAX_MESSAGE + 1),  # too big
])
def test_protocol_errors(frame: bytes) -> None:
    with pytest.raises(ws.ProtocolError):
        ws.Connection(client=False).receive_data(frame)
