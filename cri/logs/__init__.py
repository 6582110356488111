"""Container logs in the CRI log format (what the kubelet reads under /var/log/pods).

`cri_format` is pure: the shim (`cri.shim`) owns the log files and feeds container output through
a `LogEncoder`; readers and tests use `parse_line`.
"""

from cri.logs.cri_format import (
    DEFAULT_MAX_LINE_SIZE,
    LogEncoder,
    LogFormatError,
    LogLine,
    StreamName,
    encode_record,
    format_timestamp,
    parse_line,
    parse_timestamp,
)

__all__ = [
    "DEFAULT_MAX_LINE_SIZE",
    "LogEncoder",
    "LogFormatError",
    "LogLine",
    "StreamName",
    "encode_record",
    "format_timestamp",
    "parse_line",
    "parse_timestamp",
]
