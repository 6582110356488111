"""What the daemon and a shim say to each other, sans-I/O: typed messages and their JSON lines.

Three channels, all newline-terminated UTF-8 JSON objects:

1. The sync pipe (shim → daemon, exactly one line, then the shim closes it):
       {"pid": N, "shim_pid": M}   the container's init was created; N is its host pid
       {"error": "text"}           nothing was created; the shim exits non-zero
2. The control socket `<state-dir>/shim.sock` (unix stream): the client sends one request line,
   the shim answers one reply line; a connection may carry several exchanges in turn.
       {"op": "ping"}        → {"ok": true, "pid": N}
       {"op": "reopen_log"}  → {"ok": true}
       {"op": "attach", "stdin": b, "stdout": b, "stderr": b}
                             → {"ok": true}, then the connection is an attach stream (4.)
       anything else         → {"error": "text"}
   Requests are keyed by "op" so that later operations (attach, resize) are new request types;
   an op that hands the connection over to a byte stream (attach) replies `{"ok": true}` first.
3. The exit file `<state-dir>/exit`, written atomically once the container has exited and its
   output is in the log:
       {"exit_code": int, "finished_at": <unix ns>, "signal": int | null, "oom_killed": bool}

4. An attach stream: frames of a kind byte, a 4-byte big-endian length and the payload.
       shim → client: STDOUT, STDERR (the container's output, as it is logged; a tty's is all
                      STDOUT). The shim closes the stream once the container's output has ended.
       client → shim: STDIN (bytes for the container), STDIN_CLOSE (stdin EOF: with
                      --stdin-once the container's stdin closes), RESIZE ({"width", "height"}).
   A client that stops reading is cut off rather than allowed to stall the container.

Unknown keys are ignored on decode, so either side may add fields without breaking the other.
"""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeVar

from cri.shim.errors import ShimError

T = TypeVar("T")

# File names inside the state directory; both sides use these.
SOCKET_NAME: Final = "shim.sock"
CONSOLE_SOCKET_NAME: Final = "console.sock"  # the runtime sends the pty master here (tty)
EXIT_FILE_NAME: Final = "exit"
PID_FILE_NAME: Final = "pid"
SHIM_PID_FILE_NAME: Final = "shim.pid"
SHIM_LOG_NAME: Final = "shim.log"
RUNTIME_LOG_NAME: Final = "runtime.log"

# One JSON line is small; a peer that sends more without a newline is broken or hostile.
MAX_LINE: Final = 64 * 1024


class ProtocolError(ShimError, ValueError):
    """A message that is not valid JSON or lacks a required field."""


# --- sync pipe ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncOk:
    pid: int
    shim_pid: int


@dataclass(frozen=True, slots=True)
class SyncError:
    error: str


SyncMessage = SyncOk | SyncError


def encode_sync(message: SyncMessage) -> bytes:
    if isinstance(message, SyncOk):
        return _dump({"pid": message.pid, "shim_pid": message.shim_pid})
    return _dump({"error": message.error})


def decode_sync(line: bytes) -> SyncMessage:
    obj = _load(line)
    if "error" in obj:
        return SyncError(_get(obj, "error", str))
    return SyncOk(pid=_get(obj, "pid", int), shim_pid=_get(obj, "shim_pid", int))


# --- control socket -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PingRequest:
    op: ClassVar[str] = "ping"


@dataclass(frozen=True, slots=True)
class ReopenLogRequest:
    op: ClassVar[str] = "reopen_log"


@dataclass(frozen=True, slots=True)
class AttachRequest:
    op: ClassVar[str] = "attach"
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False


Request = PingRequest | ReopenLogRequest | AttachRequest

# NOTE: adding an operation is a new dataclass here, a branch in decode_request and a handler in
# the shim; the op name is the only thing on the wire that selects it.
_REQUEST_TYPES: Final[dict[str, type[Request]]] = {
    PingRequest.op: PingRequest,
    ReopenLogRequest.op: ReopenLogRequest,
    AttachRequest.op: AttachRequest,
}


def encode_request(request: Request) -> bytes:
    obj: dict[str, Any] = {"op": request.op}
    if isinstance(request, AttachRequest):
        obj.update(stdin=request.stdin, stdout=request.stdout, stderr=request.stderr)
    return _dump(obj)


def decode_request(line: bytes) -> Request:
    obj = _load(line)
    op = _get(obj, "op", str)
    try:
        request_type = _REQUEST_TYPES[op]
    except KeyError:
        raise ProtocolError(f"unknown op {op!r}") from None
    if request_type is AttachRequest:
        return AttachRequest(**{key: bool(obj.get(key, False))
                                for key in ("stdin", "stdout", "stderr")})
    return request_type()


@dataclass(frozen=True, slots=True)
class OkReply:
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class ErrorReply:
    error: str


Reply = OkReply | ErrorReply


def encode_reply(reply: Reply) -> bytes:
    if isinstance(reply, ErrorReply):
        return _dump({"error": reply.error})
    obj: dict[str, Any] = {"ok": True}
    if reply.pid is not None:
        obj["pid"] = reply.pid
    return _dump(obj)


def decode_reply(line: bytes) -> Reply:
    obj = _load(line)
    if "error" in obj:
        return ErrorReply(_get(obj, "error", str))
    if obj.get("ok") is not True:
        raise ProtocolError(f"reply has neither ok nor error: {obj!r}")
    pid = obj.get("pid")
    if pid is not None and not _is_int(pid):
        raise ProtocolError(f"pid is not an integer: {pid!r}")
    return OkReply(pid=pid)


# --- exit file ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a container's init ended, as the shim saw it.

    `exit_code` follows the shell convention: the status if it exited, 128 + the signal if a
    signal killed it (then `signal` is set too). `finished_at` is taken when the shim reaped the
    process.
    """

    exit_code: int
    finished_at: int  # unix nanoseconds
    signal: int | None = None
    oom_killed: bool = False


def encode_exit_status(status: ExitStatus) -> bytes:
    return _dump(
        {
            "exit_code": status.exit_code,
            "finished_at": status.finished_at,
            "signal": status.signal,
            "oom_killed": status.oom_killed,
        }
    )


def decode_exit_status(data: bytes) -> ExitStatus:
    obj = _load(data)
    signal = obj.get("signal")
    if signal is not None and not _is_int(signal):
        raise ProtocolError(f"signal is not an integer: {signal!r}")
    oom_killed = obj.get("oom_killed", False)
    if not isinstance(oom_killed, bool):
        raise ProtocolError(f"oom_killed is not a boolean: {oom_killed!r}")
    return ExitStatus(
        exit_code=_get(obj, "exit_code", int),
        finished_at=_get(obj, "finished_at", int),
        signal=signal,
        oom_killed=oom_killed,
    )


# --- framing ------------------------------------------------------------------------------------


class LineBuffer:
    """Splits a byte stream into lines (without their `\\n`), refusing lines over `max_line`."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        *lines, rest = self._buf.split(b"\n")
        if len(rest) > self.max_line:
            raise ProtocolError(f"line longer than {self.max_line} bytes")
        self._buf = bytearray(rest)
        return [bytes(line) for line in lines]

    def pending(self) -> bytes:
        """Bytes received after the last newline."""
        return bytes(self._buf)


# --- helpers ------------------------------------------------------------------------------------


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _load(line: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not a JSON message: {line[:200]!r}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(f"not a JSON object: {line[:200]!r}")
    return obj


def _is_int(value: object) -> bool:
    # bool is an int subclass, and `true` is never a pid or a code.
    return isinstance(value, int) and not isinstance(value, bool)


def _get(obj: dict[str, Any], key: str, kind: type[T]) -> T:
    value = obj.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"{key!r} missing or not {kind.__name__}: {obj!r}")
    return value


# --- attach stream ------------------------------------------------------------------------------


class AttachFrame(enum.IntEnum):
    STDIN = 0
    STDOUT = 1
    STDERR = 2
    RESIZE = 4
    STDIN_CLOSE = 5


_FRAME_HEADER: Final = struct.Struct(">BI")
MAX_FRAME: Final = 1024 * 1024


def encode_frame(kind: AttachFrame, payload: bytes = b"") -> bytes:
    return _FRAME_HEADER.pack(kind, len(payload)) + payload


def encode_resize(width: int, height: int) -> bytes:
    return encode_frame(AttachFrame.RESIZE, _dump({"width": width, "height": height}))


def decode_resize(payload: bytes) -> tuple[int, int]:
    obj = _load(payload)
    return _get(obj, "width", int), _get(obj, "height", int)


class FrameDecoder:
    """Splits an attach stream into (kind, payload) frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[AttachFrame, bytes]]:
        self._buffer += data
        frames: list[tuple[AttachFrame, bytes]] = []
        while len(self._buffer) >= _FRAME_HEADER.size:
            kind, length = _FRAME_HEADER.unpack_from(self._buffer)
            if length > MAX_FRAME:
                raise ProtocolError(f"attach frame of {length} bytes")
            end = _FRAME_HEADER.size + length
            if len(self._buffer) < end:
                break
            try:
                frame_kind = AttachFrame(kind)
            except ValueError:
                raise ProtocolError(f"unknown attach frame kind {kind}") from None
            frames.append((frame_kind, bytes(self._buffer[_FRAME_HEADER.size:end])))
            del self._buffer[:end]
        return frames
