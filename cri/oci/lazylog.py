"""Per-module loggers that import `logging` only where it is already in use.

`logging` costs about 10 ms to import and tear down (it pulls in traceback, re, string,
threading, weakref), more than a whole `cri-oci start` does. These loggers keep the usual
`log.warning("... %s", arg, extra={...})` calls, and where a record goes is decided per call:
- the CLI without --debug (`emit_to`): WARNING and above, formatted as the CLI's log handler did,
  to the --log file (an fd opened by the CLI at start-up) or, without --log, as logging's last
  resort would: the bare message on stderr. Lower levels are dropped, as at logging's WARNING;
- otherwise, once `logging` is imported (the daemon, the shim, the CLI with --debug), every call
  goes to `logging.getLogger(name)`;
- otherwise (nobody imported logging): the last resort, as above.

NOTE: the container init runs these after pivot_root too, where the host's standard library is
out of reach: the emitting path needs no import (time is built in), and `logging`, where used, is
imported before the fork.

NOTE: `logging.getLogger(__name__)` per module is the house style; this is the same thing minus
the import, for a package whose CLI must start in a few milliseconds.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from typing import Any

WARNING = 30
_LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}

#: the CLI's formats (time like logging's default asctime, local time with milliseconds)
TEXT = "time={time} level={level} msg={msg}\n"
JSON = '{{"level":"{level}","msg":"{msg}","time":"{time}"}}\n'

#: (fd, format) while the CLI emits records itself; fd -1: the last resort (stderr, message only)
_emitter: tuple[int, str] | None = None


def emit_to(fd: int, line_format: str = TEXT) -> None:
    """Emit WARNING and above to `fd` in `line_format` (fd -1: to stderr, message only), without
    logging; for a process that never configures logging (the CLI without --debug)."""
    global _emitter
    _emitter = (fd, line_format)


def _emit(level: int, msg: str, args: tuple[object, ...]) -> None:
    text = msg % args if args else msg
    if _emitter is None or _emitter[0] < 0:
        # logging.lastResort: "%(message)s" on sys.stderr
        try:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        return
    fd, line_format = _emitter
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f",{int(now % 1 * 1000):03d}"
    line = line_format.format(level=_LEVELS.get(level, f"Level {level}"), msg=text, time=stamp)
    try:  # noqa: SIM105 - as logging's handlers: a failed write must not fail the caller
        os.write(fd, line.encode(errors="backslashreplace"))
    except OSError:
        pass


class Logger:
    """The subset of logging.Logger the executor uses."""

    __slots__ = ("name", "_real")

    def __init__(self, name: str) -> None:
        self.name = name
        self._real: logging.Logger | None = None

    def _logger(self) -> logging.Logger | None:
        if _emitter is not None or "logging" not in sys.modules:
            return None
        if self._real is None:
            import logging

            self._real = logging.getLogger(self.name)
        return self._real

    def log(self, level: int, msg: str, *args: object, **kwargs: Any) -> None:
        real = self._logger()
        if real is not None:
            real.log(level, msg, *args, **kwargs)
        elif level >= WARNING:
            _emit(level, msg, args)

    def debug(self, msg: str, *args: object, **kwargs: Any) -> None:
        self.log(10, msg, *args, **kwargs)

    def info(self, msg: str, *args: object, **kwargs: Any) -> None:
        self.log(20, msg, *args, **kwargs)

    def warning(self, msg: str, *args: object, **kwargs: Any) -> None:
        self.log(30, msg, *args, **kwargs)

    def error(self, msg: str, *args: object, **kwargs: Any) -> None:
        self.log(40, msg, *args, **kwargs)

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging.Logger's name
        real = self._logger()
        return real.isEnabledFor(level) if real is not None else level >= WARNING


def getLogger(name: str) -> Logger:  # noqa: N802 - a drop-in for logging.getLogger
    return Logger(name)
