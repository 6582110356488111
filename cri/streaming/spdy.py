"""SPDY/3.1 framing, sans-I/O: bytes in, typed events out, bytes to send.

What Kubernetes streaming needs of SPDY (moby/spdystream, which every kubelet, apiserver, kubectl
and crictl link): SYN_STREAM, SYN_REPLY, RST_STREAM, DATA with FIN, HEADERS, PING and GOAWAY.
Header blocks are zlib-compressed with the SPDY/3 dictionary, one compression context per direction
for the whole connection, so every block must be fed to the same (de)compressor in order.

NOTE: spdystream never sends WINDOW_UPDATE or SETTINGS and drops them on receive, so windows are
not enforced here either: a peer that honoured them would stall every stream after 64 KiB.

One class serves both ends (the server in the daemon, the client in the tests): only the parity of
the stream ids it opens differs (client odd, server even).
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

VERSION: Final = 3
MAX_DATA_LENGTH: Final = (1 << 24) - 1
# A header block larger than this after inflation is refused: it is no Kubernetes client.
MAX_HEADER_BLOCK: Final = 256 * 1024

FLAG_FIN: Final = 0x01
FLAG_UNIDIRECTIONAL: Final = 0x02


class FrameType(enum.IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    NOOP = 5
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(enum.IntEnum):
    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    INVALID_CREDENTIALS = 10
    FRAME_TOO_LARGE = 11


class GoAwayStatus(enum.IntEnum):
    OK = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


# SPDY/3 draft §2.6.10.1: length-prefixed header names and values, then a run of common text.
_DICTIONARY_WORDS: Final = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type",
    "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since",
    "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range",
    "referer", "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade",
    "user-agent", "vary", "via", "warning", "www-authenticate", "method", "get", "status",
    "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
)
_DICTIONARY_TAIL: Final = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, "
    "Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY: Final = b"".join(
    struct.pack(">I", len(w)) + w.encode() for w in _DICTIONARY_WORDS
) + _DICTIONARY_TAIL.encode()

Headers = Mapping[str, Sequence[str]]


class ProtocolError(Exception):
    """The peer broke SPDY; the connection should end with GOAWAY PROTOCOL_ERROR."""


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamOpened:
    stream_id: int
    headers: dict[str, list[str]]  # names lowercased, as spdystream writes them
    fin: bool  # the peer will send nothing on it
    associated_id: int = 0

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""


@dataclass(frozen=True, slots=True)
class StreamReplied:
    stream_id: int
    headers: dict[str, list[str]]
    fin: bool


@dataclass(frozen=True, slots=True)
class HeadersReceived:
    stream_id: int
    headers: dict[str, list[str]]
    fin: bool


@dataclass(frozen=True, slots=True)
class DataReceived:
    stream_id: int
    data: bytes
    fin: bool  # the peer's half of the stream is closed (stdin EOF)


@dataclass(frozen=True, slots=True)
class StreamReset:
    stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class PingReceived:
    ping_id: int  # answered already, when the peer started it


@dataclass(frozen=True, slots=True)
class GoAwayReceived:
    last_good_stream_id: int
    status: int


Event = (StreamOpened | StreamReplied | HeadersReceived | DataReceived | StreamReset
         | PingReceived | GoAwayReceived)


@dataclass(slots=True)
class _Stream:
    local_closed: bool = False
    remote_closed: bool = False


@dataclass(slots=True)
class Connection:
    """One SPDY/3.1 connection. Feed received bytes to `receive_data`; send what
    `data_to_send` returns after each call."""

    client: bool
    _inbuf: bytearray = field(default_factory=bytearray)
    _outbuf: bytearray = field(default_factory=bytearray)
    _streams: dict[int, _Stream] = field(default_factory=dict)
    _next_id: int = 0
    _next_ping: int = 0
    _last_remote_id: int = 0
    _goaway_sent: bool = False
    _deflate: zlib._Compress = field(init=False)
    _inflate: zlib._Decompress = field(init=False)

    def __post_init__(self) -> None:
        self._next_id = 1 if self.client else 2
        self._next_ping = 1 if self.client else 2
        self._deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 8,
                                         zlib.Z_DEFAULT_STRATEGY, zdict=DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    # --- sending --------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        out = bytes(self._outbuf)
        self._outbuf.clear()
        return out

    def open_stream(self, headers: Headers, *, fin: bool = False) -> int:
        stream_id = self._next_id
        self._next_id += 2
        self._streams[stream_id] = _Stream(local_closed=fin)
        body = struct.pack(">IIBB", stream_id, 0, 0, 0) + self._header_block(headers)
        self._control(FrameType.SYN_STREAM, FLAG_FIN if fin else 0, body)
        return stream_id

    def reply(self, stream_id: int, headers: Headers | None = None, *, fin: bool = False) -> None:
        body = struct.pack(">I", stream_id) + self._header_block(headers or {})
        self._control(FrameType.SYN_REPLY, FLAG_FIN if fin else 0, body)
        if fin:
            self._close_local(stream_id)

    def send_data(self, stream_id: int, data: bytes, *, fin: bool = False) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.local_closed:
            return  # reset or closed meanwhile: the peer does not want it
        view = memoryview(data)
        while len(view) > MAX_DATA_LENGTH:
            self._data_frame(stream_id, 0, view[:MAX_DATA_LENGTH])
            view = view[MAX_DATA_LENGTH:]
        if view or fin:
            self._data_frame(stream_id, FLAG_FIN if fin else 0, view)
        if fin:
            self._close_local(stream_id)

    def reset(self, stream_id: int, status: RstStatus = RstStatus.CANCEL) -> None:
        self._control(FrameType.RST_STREAM, 0, struct.pack(">II", stream_id, status))
        self._streams.pop(stream_id, None)

    def ping(self) -> int:
        ping_id = self._next_ping
        self._next_ping += 2
        self._control(FrameType.PING, 0, struct.pack(">I", ping_id))
        return ping_id

    def go_away(self, status: GoAwayStatus = GoAwayStatus.OK) -> None:
        if not self._goaway_sent:
            self._goaway_sent = True
            self._control(FrameType.GOAWAY, 0, struct.pack(">II", self._last_remote_id, status))

    def is_open(self, stream_id: int) -> bool:
        return stream_id in self._streams

    def _control(self, kind: FrameType, flags: int, body: bytes) -> None:
        self._outbuf += struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(body))
        self._outbuf += body

    def _data_frame(self, stream_id: int, flags: int, data: memoryview | bytes) -> None:
        self._outbuf += struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data))
        self._outbuf += data

    def _header_block(self, headers: Headers) -> bytes:
        parts = [struct.pack(">I", len(headers))]
        for name, values in headers.items():
            n = name.lower().encode()
            v = b"\x00".join(value.encode() for value in values)
            parts += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
        return self._deflate.compress(b"".join(parts)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def _close_local(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        stream.local_closed = True
        if stream.remote_closed:
            del self._streams[stream_id]

    def _close_remote(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        stream.remote_closed = True
        if stream.local_closed:
            del self._streams[stream_id]

    # --- receiving ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Parse whatever whole frames `data` completes. Raises ProtocolError on a broken peer
        (after queueing GOAWAY PROTOCOL_ERROR to send)."""
        self._inbuf += data
        events: list[Event] = []
        try:
            while len(self._inbuf) >= 8:
                word, flags_length = struct.unpack_from(">II", self._inbuf)
                length = flags_length & 0xFFFFFF
                flags = flags_length >> 24
                if len(self._inbuf) < 8 + length:
                    break
                body = bytes(self._inbuf[8:8 + length])
                del self._inbuf[:8 + length]
                if word & 0x80000000:
                    version, kind = word >> 16 & 0x7FFF, word & 0xFFFF
                    if version != VERSION:
                        raise ProtocolError(f"SPDY version {version}, not {VERSION}")
                    event = self._control_frame(kind, flags, body)
                else:
                    event = self._data_received(word & 0x7FFFFFFF, flags, body)
                if event is not None:
                    events.append(event)
        except ProtocolError:
            self.go_away(GoAwayStatus.PROTOCOL_ERROR)
            raise
        return events

    def _data_received(self, stream_id: int, flags: int, body: bytes) -> Event | None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.remote_closed:
            # Data racing a reset we sent is normal; answering each would only add noise.
            return None
        fin = bool(flags & FLAG_FIN)
        if fin:
            self._close_remote(stream_id)
        return DataReceived(stream_id, body, fin)

    def _control_frame(self, kind: int, flags: int, body: bytes) -> Event | None:
        fin = bool(flags & FLAG_FIN)
        if kind == FrameType.SYN_STREAM:
            if len(body) < 10:
                raise ProtocolError("short SYN_STREAM")
            stream_id, associated = struct.unpack_from(">II", body)
            stream_id &= 0x7FFFFFFF
            if stream_id == 0 or (stream_id % 2 == 1) == self.client:
                raise ProtocolError(f"SYN_STREAM with the wrong parity: {stream_id}")
            if stream_id <= self._last_remote_id:
                raise ProtocolError(f"SYN_STREAM id {stream_id} not increasing")
            self._last_remote_id = stream_id
            headers = self._parse_headers(body[10:])
            unidirectional = bool(flags & FLAG_UNIDIRECTIONAL)
            self._streams[stream_id] = _Stream(local_closed=unidirectional, remote_closed=fin)
            return StreamOpened(stream_id, headers, fin, associated & 0x7FFFFFFF)
        if kind in (FrameType.SYN_REPLY, FrameType.HEADERS):
            if len(body) < 4:
                raise ProtocolError("short SYN_REPLY or HEADERS")
            stream_id = struct.unpack_from(">I", body)[0] & 0x7FFFFFFF
            headers = self._parse_headers(body[4:])
            if fin:
                self._close_remote(stream_id)
            if kind == FrameType.SYN_REPLY:
                return StreamReplied(stream_id, headers, fin)
            return HeadersReceived(stream_id, headers, fin)
        if kind == FrameType.RST_STREAM:
            if len(body) < 8:
                raise ProtocolError("short RST_STREAM")
            stream_id, status = struct.unpack_from(">II", body)
            self._streams.pop(stream_id & 0x7FFFFFFF, None)
            return StreamReset(stream_id & 0x7FFFFFFF, status)
        if kind == FrameType.PING:
            if len(body) != 4:
                raise ProtocolError("PING must carry 4 bytes")
            ping_id = struct.unpack(">I", body)[0]
            if (ping_id % 2 == 1) != self.client:
                self._control(FrameType.PING, 0, body)  # the peer's: echo it
            return PingReceived(ping_id)
        if kind == FrameType.GOAWAY:
            if len(body) < 8:
                raise ProtocolError("short GOAWAY")
            last, status = struct.unpack_from(">II", body)
            return GoAwayReceived(last & 0x7FFFFFFF, status)
        return None  # SETTINGS, NOOP, WINDOW_UPDATE and unknown types: ignored, as spdystream

    def _parse_headers(self, block: bytes) -> dict[str, list[str]]:
        try:
            raw = self._inflate.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise ProtocolError(f"header block: {exc}") from None
        if self._inflate.unconsumed_tail:
            raise ProtocolError("header block too large")
        try:
            (count,) = struct.unpack_from(">I", raw)
            offset = 4
            headers: dict[str, list[str]] = {}
            for _ in range(count):
                (n,) = struct.unpack_from(">I", raw, offset)
                name = raw[offset + 4:offset + 4 + n].decode()
                offset += 4 + n
                (n,) = struct.unpack_from(">I", raw, offset)
                value = raw[offset + 4:offset + 4 + n].decode()
                offset += 4 + n
                if offset > len(raw):
                    raise ProtocolError("header block truncated")
                headers.setdefault(name.lower(), []).extend(value.split("\x00"))
        except (struct.error, UnicodeDecodeError) as exc:
            raise ProtocolError(f"header block: {exc}") from None
        return headers
