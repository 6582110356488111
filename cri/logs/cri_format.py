"""The CRI container log format, sans-I/O: output chunks in, log-file bytes out, and back.

Each record is one line of the log file:

    <timestamp> <stream> <tags> <content>\\n

- timestamp: RFC 3339 in UTC with exactly nine fraction digits and `Z`
  (`2024-05-01T12:00:00.000000001Z`), as containerd writes it. A fixed width keeps lines sortable;
  the kubelet parses any number of digits (`RFC3339NanoLenient`).
- stream: `stdout` or `stderr`.
- tags: `:`-separated; the first is `F` (the content ends an output line) or `P` (partial: the
  content continues in the next record of the same stream). Readers ignore later tags.
- content: the output bytes without the output's own `\\n`. Everything else, `\\r` included, is
  copied untouched: `kubectl logs` must give back what the program wrote.

An output line longer than `max_line_size` is split into `P` records of exactly `max_line_size`
bytes followed by one `F` record with the rest (containerd's `max_container_log_line_size`,
16 KiB by default), so a program that never writes a newline cannot grow our buffers without bound.

Read: kubelet `pkg/kubelet/kuberuntime/logs/logs.go` (`parseCRILog`), containerd
`internal/cri/io/logger.go` (`redirectLogs`).
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from typing import Final, Literal, TypeGuard

StreamName = Literal["stdout", "stderr"]
STREAMS: Final[tuple[StreamName, StreamName]] = ("stdout", "stderr")

TAG_PARTIAL: Final = b"P"
TAG_FULL: Final = b"F"

DEFAULT_MAX_LINE_SIZE: Final = 16 * 1024

_NS_PER_SECOND: Final = 1_000_000_000


class LogFormatError(ValueError):
    """A log line that does not follow the CRI log format."""


def is_stream_name(value: str) -> TypeGuard[StreamName]:
    return value in STREAMS


def format_timestamp(timestamp_ns: int) -> bytes:
    """Unix nanoseconds as RFC 3339 UTC with nine fraction digits and Z."""
    seconds, nanos = divmod(timestamp_ns, _NS_PER_SECOND)
    # NOTE: time.gmtime works on whole seconds, so the fraction is formatted separately; going
    # through datetime would lose the last three digits (it stops at microseconds).
    return b"%s.%09dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode(), nanos)


# Go's RFC3339Nano layout parsed leniently, as the kubelet does: the fraction may have any number
# of digits or be absent, and the zone is `Z` or a numeric offset.
_TIMESTAMP_RE: Final = re.compile(
    rb"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})"
)


def parse_timestamp(text: bytes) -> int:
    """RFC 3339 (any fraction length, any offset) to unix nanoseconds."""
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None:
        raise LogFormatError(f"unexpected timestamp format: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 59):
        raise LogFormatError(f"timestamp out of range: {text!r}")
    fraction = match.group(7) or b""
    # Digits past the ninth are below a nanosecond: Go drops them too.
    nanos = int(fraction[:9].ljust(9, b"0")) if fraction else 0
    zone = match.group(8)
    offset = 0
    if zone != b"Z":
        sign = -1 if zone[:1] == b"-" else 1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset
    return seconds * _NS_PER_SECOND + nanos


def encode_record(timestamp_ns: int, stream: StreamName, partial: bool, content: bytes) -> bytes:
    """One log-file line. `content` must not contain `\\n` (it would end the record early)."""
    tag = TAG_PARTIAL if partial else TAG_FULL
    return b"%s %s %s %s\n" % (format_timestamp(timestamp_ns), stream.encode(), tag, content)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One parsed record. The output it stands for is `content`, plus `\\n` unless `partial`."""

    timestamp_ns: int
    stream: StreamName
    partial: bool
    content: bytes
    tags: tuple[bytes, ...] = (TAG_FULL,)


def parse_line(line: bytes) -> LogLine:
    """Parse one record, with or without its trailing `\\n`.

    As lenient as the kubelet's `parseCRILog`: any fraction length and offset in the timestamp,
    unknown tags after the first, and a first tag other than `P` read as full. The space after the
    tags is required, so an empty full line is `... stdout F \\n`.
    """
    if line.endswith(b"\n"):
        line = line[:-1]
    try:
        timestamp, stream, tags, content = line.split(b" ", 3)
    except ValueError:
        raise LogFormatError(
            f"expected '<timestamp> <stream> <tags> <content>': {line!r}"
        ) from None
    stream_name = stream.decode("ascii", "replace")
    if not is_stream_name(stream_name):
        raise LogFormatError(f"unexpected stream type {stream_name!r}")
    tag_list = tuple(tags.split(b":"))
    return LogLine(
        timestamp_ns=parse_timestamp(timestamp),
        stream=stream_name,
        partial=tag_list[0] == TAG_PARTIAL,
        content=content,
        tags=tag_list,
    )


class LogEncoder:
    """Turns a container's output, chunk by chunk and per stream, into CRI log records.

    Feed it what `read()` returned from the container's stdout or stderr pipe, with the time it was
    read; it returns the bytes to append to the log file (possibly empty). Output without a newline
    yet is kept per stream, so a line written in several `write()` calls becomes one record and
    stdout and stderr never mix within a record. Call `flush()` when a stream reaches EOF.
    """

    def __init__(self, max_line_size: int = DEFAULT_MAX_LINE_SIZE) -> None:
        if max_line_size < 1:
            raise ValueError(f"max_line_size must be positive, got {max_line_size}")
        self.max_line_size = max_line_size
        self._pending: dict[StreamName, bytearray] = {name: bytearray() for name in STREAMS}

    def pending(self, stream: StreamName) -> int:
        """How many bytes of `stream` wait for their newline."""
        return len(self._buffer(stream))

    def feed(self, stream: StreamName, data: bytes, timestamp_ns: int) -> bytes:
        buf = self._buffer(stream)
        buf += data
        out = bytearray()
        start = 0
        while (newline := buf.find(b"\n", start)) != -1:
            self._emit_line(out, stream, buf, start, newline, timestamp_ns)
            start = newline + 1
        # NOTE: a line that already exceeds the limit without a newline is written out as P
        # records now rather than held: memory stays bounded by max_line_size per stream, and the
        # reader sees the output while it is being produced. The strict `>` keeps a line of exactly
        # max_line_size waiting for its newline, so it becomes a single F instead of P + empty F.
        while len(buf) - start > self.max_line_size:
            end = start + self.max_line_size
            out += encode_record(timestamp_ns, stream, True, bytes(buf[start:end]))
            start = end
        del buf[:start]
        return bytes(out)

    def flush(self, stream: StreamName, timestamp_ns: int) -> bytes:
        """Write out what is left of `stream` at EOF.

        The leftover is tagged F although no newline ended it: the stream is over, so the line is
        complete. A trailing P would tell readers to wait for a continuation that never comes;
        the kubelet would hold it back from `kubectl logs` or glue it to the next line it reads.
        """
        buf = self._buffer(stream)
        if not buf:
            return b""
        record = encode_record(timestamp_ns, stream, False, bytes(buf))
        buf.clear()
        return record

    def flush_all(self, timestamp_ns: int) -> bytes:
        return b"".join(self.flush(stream, timestamp_ns) for stream in STREAMS)

    def _buffer(self, stream: StreamName) -> bytearray:
        try:
            return self._pending[stream]
        except KeyError:
            raise ValueError(f"unknown stream {stream!r}, expected stdout or stderr") from None

    def _emit_line(
        self,
        out: bytearray,
        stream: StreamName,
        buf: bytearray,
        start: int,
        end: int,
        timestamp_ns: int,
    ) -> None:
        """Append buf[start:end] (one complete output line) as P* F records."""
        while end - start > self.max_line_size:
            cut = start + self.max_line_size
            out += encode_record(timestamp_ns, stream, True, bytes(buf[start:cut]))
            start = cut
        out += encode_record(timestamp_ns, stream, False, bytes(buf[start:end]))
