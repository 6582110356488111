from __future__ import annotations

import json

import pytest

from cri.shim import protocol
from cri.shim.protocol import (
    MAX_LINE,
    ErrorReply,
    ExitStatus,
    LineBuffer,
    OkReply,
    PingRequest,
    ProtocolError,
    ReopenLogRequest,
    Reply,
    Request,
    SyncError,
    SyncMessage,
    SyncOk,
    decode_exit_status,
    decode_reply,
    decode_request,
    decode_sync,
    encode_exit_status,
    encode_reply,
    encode_request,
    encode_sync,
)


@pytest.mark.parametrize("message", [SyncOk(pid=1234, shim_pid=1200), SyncError("boom: x")])
def test_sync_round_trip(message: SyncMessage) -> None:
    line = encode_sync(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_sync(line) == message


def test_sync_wire_format() -> None:
    assert json.loads(encode_sync(SyncOk(pid=42, shim_pid=41))) == {"pid": 42, "shim_pid": 41}
    assert json.loads(encode_sync(SyncError("no rootfs"))) == {"error": "no rootfs"}


@pytest.mark.parametrize(
    "line",
    [b"", b"not json\n", b"[1]\n", b'{"pid": "12"}\n', b'{"pid": true, "shim_pid": 1}\n', b"{}\n"],
)
def test_sync_rejects_malformed(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_sync(line)


def test_unknown_fields_are_ignored() -> None:
    assert decode_sync(b'{"pid": 7, "shim_pid": 6, "future": 1}') == SyncOk(7, 6)
    assert decode_reply(b'{"ok": true, "extra": []}') == OkReply()


@pytest.mark.parametrize("request_", [PingRequest(), ReopenLogRequest()])
def test_request_round_trip(request_: Request) -> None:
    line = encode_request(request_)
    assert json.loads(line) == {"op": request_.op}
    assert decode_request(line) == request_


def test_request_wire_names() -> None:
    assert decode_request(b'{"op": "ping"}\n') == PingRequest()
    assert decode_request(b'{"op": "reopen_log"}') == ReopenLogRequest()


@pytest.mark.parametrize("line", [b'{"op": "explode"}', b'{"op": 1}', b"{}", b"ping"])
def test_bad_requests_are_protocol_errors(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_request(line)


@pytest.mark.parametrize("reply", [OkReply(), OkReply(pid=99), ErrorReply("no log path")])
def test_reply_round_trip(reply: Reply) -> None:
    assert decode_reply(encode_reply(reply)) == reply


def test_reply_wire_format() -> None:
    assert json.loads(encode_reply(OkReply(pid=5))) == {"ok": True, "pid": 5}
    assert json.loads(encode_reply(OkReply())) == {"ok": True}
    assert json.loads(encode_reply(ErrorReply("x"))) == {"error": "x"}


@pytest.mark.parametrize("line", [b"{}", b'{"ok": false}', b'{"ok": true, "pid": "1"}'])
def test_bad_replies_are_protocol_errors(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_reply(line)


@pytest.mark.parametrize(
    "status",
    [
        ExitStatus(exit_code=0, finished_at=1_714_564_800_000_000_001),
        ExitStatus(exit_code=137, finished_at=1, signal=9),
        ExitStatus(exit_code=137, finished_at=2, signal=9, oom_killed=True),
    ],
)
def test_exit_status_round_trip(status: ExitStatus) -> None:
    assert decode_exit_status(encode_exit_status(status)) == status


def test_exit_file_wire_format() -> None:
    data = encode_exit_status(ExitStatus(exit_code=143, finished_at=10, signal=15))
    assert json.loads(data) == {
        "exit_code": 143,
        "finished_at": 10,
        "signal": 15,
        "oom_killed": False,
    }


@pytest.mark.parametrize(
    "data",
    [
        b'{"finished_at": 1}',
        b'{"exit_code": 1}',
        b'{"exit_code": 1, "finished_at": 1, "signal": "KILL"}',
        b'{"exit_code": 1, "finished_at": 1, "oom_killed": 0}',
        b'{"exit_code": 1, "fini',  # a torn write: cannot happen with rename, still rejected
    ],
)
def test_bad_exit_files_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_exit_status(data)


def test_line_buffer_splits_and_keeps_the_rest() -> None:
    lines = LineBuffer()
    assert lines.feed(b'{"op": "pi') == []
    assert lines.feed(b'ng"}\n{"op"') == [b'{"op": "ping"}']
    assert lines.pending() == b'{"op"'
    assert lines.feed(b': "reopen_log"}\n\n') == [b'{"op": "reopen_log"}', b""]
    assert lines.pending() == b""


def test_line_buffer_refuses_endless_lines() -> None:
    lines = LineBuffer(max_line=8)
    assert lines.feed(b"12345678") == []
    with pytest.raises(ProtocolError):
        lines.feed(b"9")
    assert LineBuffer().max_line == MAX_LINE


# --- attach -------------------------------------------------------------------------------------


def test_attach_request_round_trip() -> None:
    request = protocol.AttachRequest(stdin=True, stdout=True, stderr=False)
    assert protocol.decode_request(protocol.encode_request(request)) == request
    assert protocol.decode_request(b'{"op": "attach"}\n') == protocol.AttachRequest()


def test_attach_frames_split_anywhere() -> None:
    stream = (protocol.encode_frame(protocol.AttachFrame.STDOUT, b"out\n")
              + protocol.encode_resize(120, 40)
              + protocol.encode_frame(protocol.AttachFrame.STDIN_CLOSE))
    decoder = protocol.FrameDecoder()
    frames = [f for i in range(len(stream)) for f in decoder.feed(stream[i:i + 1])]
    assert [kind for kind, _ in frames] == [protocol.AttachFrame.STDOUT,
                                            protocol.AttachFrame.RESIZE,
                                            protocol.AttachFrame.STDIN_CLOSE]
    assert frames[0][1] == b"out\n"
    assert protocol.decode_resize(frames[1][1]) == (120, 40)


@pytest.mark.parametrize("frame", [b"\x09\x00\x00\x00\x00", b"\x01\xff\xff\xff\xff"])
def test_bad_attach_frames(frame: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.FrameDecoder().feed(frame)
