"""The Kubernetes channel protocols for exec and attach, sans-I/O.

Over SPDY each stream carries a `streamType` header; over WebSocket each message starts with its
channel number (or, in the base64 variants, an ASCII digit and base64 text). The error channel
carries plain text (v1 to v3) or a JSON metav1.Status (v4, v5). v5 adds a CLOSE signal:
the two bytes 0xFF and a channel, the WebSocket way to half-close stdin.
(apimachinery `pkg/util/remotecommand/constants.go`, client-go `tools/remotecommand/v4.go`.)
"""

from __future__ import annotations

import base64
import enum
import json
from dataclasses import dataclass, field
from typing import Final

V1: Final = "channel.k8s.io"
V2: Final = "v2.channel.k8s.io"
V3: Final = "v3.channel.k8s.io"
V4: Final = "v4.channel.k8s.io"
V5: Final = "v5.channel.k8s.io"
BASE64_V1: Final = "base64.channel.k8s.io"
BASE64_V4: Final = "v4.base64.channel.k8s.io"

# Newest first: the client's order decides, this only says what we speak.
SPDY_PROTOCOLS: Final = (V4, V3, V2, V1)
WEBSOCKET_PROTOCOLS: Final = (V5, V4, BASE64_V4, V1, BASE64_V1, "")

CLOSE_SIGNAL: Final = 0xFF


class Channel(enum.IntEnum):
    STDIN = 0
    STDOUT = 1
    STDERR = 2
    ERROR = 3
    RESIZE = 4


STREAM_TYPES: Final = {"stdin": Channel.STDIN, "stdout": Channel.STDOUT,
                       "stderr": Channel.STDERR, "error": Channel.ERROR,
                       "resize": Channel.RESIZE}


@dataclass(frozen=True, slots=True)
class Options:
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def expected_streams(protocol: str, options: Options) -> set[Channel]:
    """The SPDY streams a client of `protocol` opens before the command may start."""
    wanted = {Channel.ERROR}
    if options.stdin:
        wanted.add(Channel.STDIN)
    if options.stdout:
        wanted.add(Channel.STDOUT)
    if options.stderr and not options.tty:
        wanted.add(Channel.STDERR)
    if options.tty and protocol not in (V1, V2):
        wanted.add(Channel.RESIZE)
    return wanted


def is_structured(protocol: str) -> bool:
    """Whether the error channel carries a JSON Status (v4 and later) rather than text."""
    return protocol in (V4, V5, BASE64_V4)


def exit_status(protocol: str, exit_code: int | None, error: str = "") -> bytes:
    """What to write on the error channel when the command ends. Empty means write nothing."""
    if not is_structured(protocol):
        if error:
            return error.encode()
        if exit_code:
            return f"command terminated with non-zero exit code: exit status {exit_code}".encode()
        return b""
    if error:
        status = {"metadata": {}, "status": "Failure", "message": error,
                  "reason": "InternalError", "code": 500,
                  "details": {"causes": [{"message": error}]}}
    elif exit_code:
        status = {
            "metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {exit_code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
        }
    else:
        status = {"metadata": {}, "status": "Success"}
    return json.dumps(status).encode()


@dataclass(slots=True)
class ResizeDecoder:
    """The resize channel: a run of JSON objects `{"Width":W,"Height":H}` (Go's json.Encoder,
    so newline-separated, though nothing here depends on that)."""

    _buffer: str = ""
    _decoder: json.JSONDecoder = field(default_factory=json.JSONDecoder)

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        self._buffer += data.decode(errors="replace")
        sizes: list[tuple[int, int]] = []
        while True:
            text = self._buffer.lstrip()
            if not text:
                self._buffer = ""
                return sizes
            try:
                obj, end = self._decoder.raw_decode(text)
            except json.JSONDecodeError:
                if len(text) > 4096:  # no resize message is this long: drop the garbage
                    self._buffer = ""
                else:
                    self._buffer = text
                return sizes
            self._buffer = text[end:]
            if isinstance(obj, dict):
                width, height = obj.get("Width", 0), obj.get("Height", 0)
                if isinstance(width, int) and isinstance(height, int) and width >= 0 \
                        and height >= 0:
                    sizes.append((min(width, 0xFFFF), min(height, 0xFFFF)))


# --- WebSocket channel framing ------------------------------------------------------------------


def is_base64(protocol: str) -> bool:
    return protocol in (BASE64_V1, BASE64_V4)


def encode_ws(protocol: str, channel: int, data: bytes) -> tuple[bytes, bool]:
    """A message for `channel`: (payload, binary)."""
    if is_base64(protocol):
        return str(channel).encode() + base64.b64encode(data), False
    return bytes([channel]) + data, True


@dataclass(frozen=True, slots=True)
class ChannelData:
    channel: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    channel: int


def decode_ws(protocol: str, payload: bytes) -> ChannelData | ChannelClosed | None:
    """A client message; None for an empty one (clients send those as keep-alives)."""
    if not payload:
        return None
    if is_base64(protocol):
        digit = payload[:1]
        if not digit.isdigit():
            raise ValueError(f"base64 channel message starts with {digit!r}")
        try:
            return ChannelData(int(digit), base64.b64decode(payload[1:], validate=False))
        except ValueError:
            raise ValueError("bad base64 in a channel message") from None
    if protocol == V5 and payload[0] == CLOSE_SIGNAL:
        if len(payload) != 2:
            raise ValueError("a CLOSE signal names exactly one channel")
        return ChannelClosed(payload[1])
    return ChannelData(payload[0], payload[1:])
