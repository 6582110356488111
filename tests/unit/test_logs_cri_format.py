from __future__ import annotations

import pytest

from cri.logs import (
    LogEncoder,
    LogFormatError,
    LogLine,
    StreamName,
    encode_record,
    format_timestamp,
    parse_line,
    parse_timestamp,
)

T0 = 1_714_564_800_000_000_001  # 2024-05-01T12:00:00.000000001Z
T1 = T0 + 1_500_000_000


def records(data: bytes) -> list[LogLine]:
    assert data == b"" or data.endswith(b"\n")
    return [parse_line(line) for line in data.splitlines(keepends=True)]


def summary(data: bytes) -> list[tuple[str, str, bytes]]:
    return [(r.stream, "P" if r.partial else "F", r.content) for r in records(data)]


def reassemble(data: bytes, stream: StreamName) -> bytes:
    """What the program wrote, as the kubelet rebuilds it from the records."""
    return b"".join(
        r.content + (b"" if r.partial else b"\n") for r in records(data) if r.stream == stream
    )


# --- timestamps ---------------------------------------------------------------------------------


def test_timestamp_has_nine_fraction_digits_and_z() -> None:
    assert format_timestamp(T0) == b"2024-05-01T12:00:00.000000001Z"
    assert format_timestamp(1_714_564_800_000_000_000) == b"2024-05-01T12:00:00.000000000Z"
    assert format_timestamp(0) == b"1970-01-01T00:00:00.000000000Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"2024-05-01T12:00:00.000000001Z", T0),
        (b"2024-05-01T12:00:00Z", T0 - 1),
        (b"2024-05-01T12:00:00.5Z", T0 - 1 + 500_000_000),
        (b"2024-05-01T14:00:00.000000001+02:00", T0),
        (b"2024-05-01T11:30:00.000000001-00:30", T0),
        (b"2024-05-01T12:00:00.0000000019Z", T0),  # below a nanosecond: dropped, as Go does
    ],
)
def test_parse_timestamp_is_lenient_like_rfc3339nano(text: bytes, expected: int) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text", [b"2024-05-01 12:00:00Z", b"2024-05-01T12:00:00", b"2024-13-01T12:00:00Z", b"yesterday"]
)
def test_parse_timestamp_rejects_garbage(text: bytes) -> None:
    with pytest.raises(LogFormatError):
        parse_timestamp(text)


def test_timestamp_round_trip() -> None:
    for ns in (0, T0, T1, 4_102_444_799_999_999_999):
        assert parse_timestamp(format_timestamp(ns)) == ns


# --- encoder ------------------------------------------------------------------------------------


def test_complete_line_is_one_full_record() -> None:
    enc = LogEncoder()
    assert enc.feed("stdout", b"hello world\n", T0) == (
        b"2024-05-01T12:00:00.000000001Z stdout F hello world\n"
    )


def test_several_lines_in_one_chunk() -> None:
    enc = LogEncoder()
    out = enc.feed("stdout", b"a\nb\nc\n", T0)
    assert summary(out) == [("stdout", "F", b"a"), ("stdout", "F", b"b"), ("stdout", "F", b"c")]


def test_line_split_across_chunks_is_buffered_until_newline() -> None:
    enc = LogEncoder()
    assert enc.feed("stdout", b"hel", T0) == b""
    assert enc.pending("stdout") == 3
    assert enc.feed("stdout", b"lo wo", T0) == b""
    out = enc.feed("stdout", b"rld\nnext", T1)
    assert summary(out) == [("stdout", "F", b"hello world")]
    # The record carries the time its newline arrived.
    assert records(out)[0].timestamp_ns == T1
    assert enc.pending("stdout") == 4


def test_interleaved_streams_are_buffered_separately() -> None:
    enc = LogEncoder()
    out = enc.feed("stdout", b"out-", T0)
    out += enc.feed("stderr", b"err-", T0)
    out += enc.feed("stdout", b"1\n", T0)
    out += enc.feed("stderr", b"1\nerr-2\n", T0)
    out += enc.feed("stdout", b"2\n", T0)
    assert summary(out) == [
        ("stdout", "F", b"out-1"),
        ("stderr", "F", b"err-1"),
        ("stderr", "F", b"err-2"),
        ("stdout", "F", b"2"),
    ]


def test_crlf_and_other_bytes_are_untouched() -> None:
    enc = LogEncoder()
    payload = b"dos line\r\n\ttab \x1b[31mred\x1b[0m \xff\xfe\r\n"
    out = enc.feed("stdout", payload, T0)
    assert summary(out) == [
        ("stdout", "F", b"dos line\r"),
        ("stdout", "F", b"\ttab \x1b[31mred\x1b[0m \xff\xfe\r"),
    ]
    assert reassemble(out, "stdout") == payload


def test_empty_lines_are_full_records_with_empty_content() -> None:
    enc = LogEncoder()
    out = enc.feed("stderr", b"\n\nx\n", T0)
    assert out.splitlines()[0] == b"2024-05-01T12:00:00.000000001Z stderr F "
    assert summary(out) == [("stderr", "F", b""), ("stderr", "F", b""), ("stderr", "F", b"x")]


def test_long_line_is_split_into_partial_records() -> None:
    enc = LogEncoder(max_line_size=4)
    out = enc.feed("stdout", b"abcdefghij\n", T0)
    assert summary(out) == [
        ("stdout", "P", b"abcd"),
        ("stdout", "P", b"efgh"),
        ("stdout", "F", b"ij"),
    ]
    assert reassemble(out, "stdout") == b"abcdefghij\n"


def test_line_of_exactly_max_size_is_one_full_record() -> None:
    enc = LogEncoder(max_line_size=4)
    assert summary(enc.feed("stdout", b"abcd\n", T0)) == [("stdout", "F", b"abcd")]
    # ...also when its newline comes in a later chunk: no P followed by an empty F.
    assert enc.feed("stdout", b"wxyz", T0) == b""
    assert summary(enc.feed("stdout", b"\n", T0)) == [("stdout", "F", b"wxyz")]
    assert summary(enc.feed("stdout", b"12345678\n", T0)) == [
        ("stdout", "P", b"1234"),
        ("stdout", "F", b"5678"),
    ]


def test_output_without_newline_is_emitted_as_partials_once_over_the_limit() -> None:
    enc = LogEncoder(max_line_size=4)
    assert enc.feed("stdout", b"abc", T0) == b""
    assert summary(enc.feed("stdout", b"defghijk", T0)) == [
        ("stdout", "P", b"abcd"),
        ("stdout", "P", b"efgh"),
    ]
    assert enc.pending("stdout") == 3  # bounded by max_line_size
    assert summary(enc.feed("stdout", b"l\n", T0)) == [("stdout", "F", b"ijkl")]


def test_default_max_line_size_is_16k() -> None:
    enc = LogEncoder()
    line = b"x" * (16 * 1024 + 1)
    out = enc.feed("stdout", line + b"\n", T0)
    assert [(s, t, len(c)) for s, t, c in summary(out)] == [
        ("stdout", "P", 16 * 1024),
        ("stdout", "F", 1),
    ]


def test_flush_writes_leftover_as_full() -> None:
    enc = LogEncoder()
    enc.feed("stdout", b"no newline at end", T0)
    enc.feed("stderr", b"err tail", T0)
    assert summary(enc.flush("stdout", T1)) == [("stdout", "F", b"no newline at end")]
    assert enc.flush("stdout", T1) == b""
    assert summary(enc.flush_all(T1)) == [("stderr", "F", b"err tail")]
    assert enc.flush_all(T1) == b""


def test_unknown_stream_is_rejected() -> None:
    enc = LogEncoder()
    with pytest.raises(ValueError):
        enc.feed("stdin", b"x\n", T0)  # type: ignore[arg-type]


def test_round_trip_of_arbitrary_output() -> None:
    enc = LogEncoder(max_line_size=7)
    chunks: list[tuple[StreamName, bytes]] = [
        ("stdout", b"first line\nsecond "),
        ("stderr", b"warning: x\r\n"),
        ("stdout", b"half\n\n"),
        ("stderr", b"a very long error message without newline"),
        ("stdout", b"tail"),
    ]
    out = b"".join(enc.feed(stream, data, T0 + i) for i, (stream, data) in enumerate(chunks))
    out += enc.flush_all(T1)
    for stream in ("stdout", "stderr"):
        written = b"".join(d for s, d in chunks if s == stream)
        assert reassemble(out, stream) == written + b"\n"  # flush completed the last line
    for record in records(out):
        assert len(record.content) <= 7
        assert T0 <= record.timestamp_ns <= T1


# --- parser -------------------------------------------------------------------------------------


def test_parse_line_round_trip() -> None:
    line = encode_record(T0, "stderr", True, b"some  spaced content ")
    assert parse_line(line) == LogLine(T0, "stderr", True, b"some  spaced content ", (b"P",))
    assert parse_line(line.rstrip(b"\n")) == parse_line(line)


def test_parse_line_is_lenient_like_the_kubelet() -> None:
    # Short fraction, numeric offset, extra tags: all accepted; the first tag decides.
    parsed = parse_line(b"2024-05-01T14:00:00.5+02:00 stdout F:x:y hello\n")
    assert parsed.timestamp_ns == T0 - 1 + 500_000_000
    assert not parsed.partial
    assert parsed.tags == (b"F", b"x", b"y")
    assert parsed.content == b"hello"
    assert parse_line(b"2024-05-01T12:00:00Z stdout P:x part").partial
    # An unknown first tag is read as full, as the kubelet does.
    assert not parse_line(b"2024-05-01T12:00:00Z stdout Q c").partial


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"2024-05-01T12:00:00Z",
        b"2024-05-01T12:00:00Z stdout",
        b"2024-05-01T12:00:00Z stdout F",  # the space before the content is required
        b"2024-05-01T12:00:00Z stdin F x",
        b"not-a-time stdout F x",
    ],
)
def test_parse_line_rejects_malformed(line: bytes) -> None:
    with pytest.raises(LogFormatError):
        parse_line(line)
