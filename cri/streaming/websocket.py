"""WebSocket framing (RFC 6455), sans-I/O: bytes in, typed events out, bytes to send.

Written here rather than taken from wsproto: the Kubernetes channel protocols use one message kind
per direction and no extensions, so framing, masking, fragments, ping/pong and the closing
handshake are all that is needed, about 150 lines with no dependency. The HTTP handshake is in
`cri.streaming.handshake`.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import os
import struct
from dataclasses import dataclass, field
from typing import Final

GUID: Final = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# Far above what a kubelet client sends in one message (client-go writes 32 KiB chunks).
MAX_MESSAGE: Final = 16 * 1024 * 1024


class Opcode(enum.IntEnum):
    CONTINUATION = 0
    TEXT = 1
    BINARY = 2
    CLOSE = 8
    PING = 9
    PONG = 10


class CloseCode(enum.IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005
    INVALID_DATA = 1007
    TOO_BIG = 1009
    INTERNAL_ERROR = 1011


class ProtocolError(Exception):
    def __init__(self, message: str, code: CloseCode = CloseCode.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


@dataclass(frozen=True, slots=True)
class Message:
    data: bytes
    binary: bool


@dataclass(frozen=True, slots=True)
class Ping:
    data: bytes  # answered already


@dataclass(frozen=True, slots=True)
class Pong:
    data: bytes


@dataclass(frozen=True, slots=True)
class Closed:
    code: int
    reason: str  # our CLOSE reply is queued when the peer started the closing handshake


Event = Message | Ping | Pong | Closed


@dataclass(slots=True)
class Connection:
    """One WebSocket connection after the handshake. A server requires masked frames from the
    client and sends unmasked ones; a client (the tests) does the reverse."""

    client: bool = False
    _inbuf: bytearray = field(default_factory=bytearray)
    _outbuf: bytearray = field(default_factory=bytearray)
    _fragments: bytearray = field(default_factory=bytearray)
    _fragment_opcode: int | None = None
    close_sent: bool = False
    close_received: bool = False

    def data_to_send(self) -> bytes:
        out = bytes(self._outbuf)
        self._outbuf.clear()
        return out

    def send_message(self, data: bytes, *, binary: bool = True) -> None:
        if not self.close_sent:
            self._frame(Opcode.BINARY if binary else Opcode.TEXT, data)

    def ping(self, data: bytes = b"") -> None:
        if not self.close_sent:
            self._frame(Opcode.PING, data)

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        if not self.close_sent:
            self.close_sent = True
            self._frame(Opcode.CLOSE, struct.pack(">H", code) + reason.encode()[:120])

    def _frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        header = bytearray([0x80 | opcode])
        mask_bit = 0x80 if self.client else 0
        if n < 126:
            header.append(mask_bit | n)
        elif n < 1 << 16:
            header.append(mask_bit | 126)
            header += struct.pack(">H", n)
        else:
            header.append(mask_bit | 127)
            header += struct.pack(">Q", n)
        if self.client:
            mask = os.urandom(4)
            header += mask
            payload = _apply_mask(payload, mask)
        self._outbuf += header
        self._outbuf += payload

    def receive_data(self, data: bytes) -> list[Event]:
        self._inbuf += data
        events: list[Event] = []
        while True:
            frame = self._next_frame()
            if frame is None:
                return events
            event = self._handle(*frame)
            if event is not None:
                events.append(event)

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buf = self._inbuf
        if len(buf) < 2:
            return None
        fin, rsv, opcode = buf[0] & 0x80, buf[0] & 0x70, buf[0] & 0x0F
        masked, n = buf[1] & 0x80, buf[1] & 0x7F
        if rsv:
            raise ProtocolError("reserved bits set without an extension")
        offset = 2
        if n == 126:
            if len(buf) < 4:
                return None
            (n,) = struct.unpack_from(">H", buf, 2)
            offset = 4
        elif n == 127:
            if len(buf) < 10:
                return None
            (n,) = struct.unpack_from(">Q", buf, 2)
            offset = 10
        if n > MAX_MESSAGE:
            raise ProtocolError(f"frame of {n} bytes", CloseCode.TOO_BIG)
        if bool(masked) == self.client:
            raise ProtocolError("frames from a client must be masked, a server's must not")
        mask = b""
        if masked:
            if len(buf) < offset + 4:
                return None
            mask = bytes(buf[offset:offset + 4])
            offset += 4
        if len(buf) < offset + n:
            return None
        payload = bytes(buf[offset:offset + n])
        del buf[:offset + n]
        if mask:
            payload = _apply_mask(payload, mask)
        return bool(fin), opcode, payload

    def _handle(self, fin: bool, opcode: int, payload: bytes) -> Event | None:
        if opcode >= 8:
            if not fin or len(payload) > 125:
                raise ProtocolError("control frames are short and never fragmented")
            if opcode == Opcode.PING:
                self._frame(Opcode.PONG, payload)
                return Ping(payload)
            if opcode == Opcode.PONG:
                return Pong(payload)
            if opcode == Opcode.CLOSE:
                self.close_received = True
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else \
                    CloseCode.NO_STATUS
                reason = payload[2:].decode(errors="replace")
                self.close(code if code != CloseCode.NO_STATUS else CloseCode.NORMAL)
                return Closed(code, reason)
            raise ProtocolError(f"unknown control opcode {opcode}")
        if opcode == Opcode.CONTINUATION:
            if self._fragment_opcode is None:
                raise ProtocolError("continuation without a first fragment")
        elif opcode in (Opcode.TEXT, Opcode.BINARY):
            if self._fragment_opcode is not None:
                raise ProtocolError("new message inside a fragmented one")
            self._fragment_opcode = opcode
        else:
            raise ProtocolError(f"unknown opcode {opcode}")
        self._fragments += payload
        if len(self._fragments) > MAX_MESSAGE:
            raise ProtocolError("message too big", CloseCode.TOO_BIG)
        if not fin:
            return None
        message = Message(bytes(self._fragments), binary=self._fragment_opcode == Opcode.BINARY)
        self._fragments.clear()
        self._fragment_opcode = None
        return message


def _apply_mask(data: bytes, mask: bytes) -> bytes:
    # XOR as one big integer: linear-time and about 100x faster than a Python byte loop.
    n = len(data)
    if n == 0:
        return data
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")
