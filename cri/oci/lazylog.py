"""Per-module loggers that import `logging` only when a record can go somewhere.

`logging` costs about 10 ms to import and tear down (it pulls in traceback, re, string,
threading, weakref), more than a whole `cri-oci start` does. These loggers keep the usual
`log.info("... %s", arg, extra={...})` calls, with the same outcome:
- as long as nobody imported `logging` (the CLI without --debug), the level is WARNING (logging's
  default, and the CLI's with --log), so debug/info records are dropped here unread;
- warning and above always go to the real logger (on first use, after running the configuration
  the CLI registered for `--log`), so they reach the log file, or stderr by logging's last resort;
- once `logging` is imported (the daemon, the shim, `--debug`), every call goes straight through.

NOTE: `logging.getLogger(__name__)` per module is the house style; this is the same thing minus
the import, for a package whose CLI must start in a few milliseconds.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable
    from typing import Any

#: set by the CLI for --log: configures handlers the first time a record is really emitted
_pending: Callable[[], None] | None = None


def configure_on_first_use(fn: Callable[[], None]) -> None:
    global _pending
    _pending = fn


def _configure() -> None:
    global _pending
    fn, _pending = _pending, None
    if fn is not None:
        fn()


class Logger:
    """The subset of logging.Logger the executor uses."""

    __slots__ = ("name", "_real")

    def __init__(self, name: str) -> None:
        self.name = name
        self._real: logging.Logger | None = None

    def _logger(self) -> logging.Logger:
        _configure()
        if self._real is None:
            import logging

            self._real = logging.getLogger(self.name)
        return self._real

    @staticmethod
    def _quiet() -> bool:
        """Nothing imported logging: debug and info go nowhere (a configuration the CLI left
        pending is for WARNING and above: --debug configures logging at once)."""
        return "logging" not in sys.modules

    def debug(self, msg: str, *args: object, **kwargs: Any) -> None:
        if not self._quiet():
            self._logger().debug(msg, *args, **kwargs)

    def info(self, msg: str, *args: object, **kwargs: Any) -> None:
        if not self._quiet():
            self._logger().info(msg, *args, **kwargs)

    def warning(self, msg: str, *args: object, **kwargs: Any) -> None:
        self._logger().warning(msg, *args, **kwargs)

    def error(self, msg: str, *args: object, **kwargs: Any) -> None:
        self._logger().error(msg, *args, **kwargs)

    def exception(self, msg: str, *args: object, **kwargs: Any) -> None:
        self._logger().exception(msg, *args, **kwargs)

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging.Logger's name
        if self._quiet():
            return level >= 30  # WARNING, logging's default
        return self._logger().isEnabledFor(level)


def getLogger(name: str) -> Logger:  # noqa: N802 - a drop-in for logging.getLogger
    return Logger(name)
