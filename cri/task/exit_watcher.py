"""Notices task exits while the daemon runs, so STOPPED events come when the exit happens rather
than when someone next asks for a status.

One thread waits in epoll on a pidfd per live task: no polling, no cost while nothing exits. A
pidfd names one process, so a pid reused later can never be mistaken for the task; the start
time is checked once, when the pidfd is opened. The callback runs on this thread and is expected
to record the exit through the domain (which publishes the event).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Callable

from cri.task.runner import pid_start_time

log = logging.getLogger(__name__)


class ExitWatcher:
    def __init__(self, on_exit: Callable[[str], None]) -> None:
        self._on_exit = on_exit
        self._epoll = select.epoll()
        self._keys: dict[int, str] = {}  # pidfd -> key
        self._fds: dict[str, int] = {}  # key -> pidfd
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="exit-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        os.write(self._wake_w, b"x")
        self._thread.join(5)

    def watch(self, key: str, pid: int, start_time: int | None) -> bool:
        """Call on_exit(key) once pid exits. False when it has already gone."""
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return False
        if pid_start_time(pid) != start_time:
            os.close(fd)  # the pid is someone else now: ours has exited
            return False
        with self._lock:
            old = self._fds.pop(key, None)
            if old is not None:
                self._drop(old)
            self._fds[key] = fd
            self._keys[fd] = key
            self._epoll.register(fd, select.EPOLLIN)
        return True

    def forget(self, key: str) -> None:
        with self._lock:
            fd = self._fds.pop(key, None)
            if fd is not None:
                self._drop(fd)

    def watching(self) -> set[str]:
        with self._lock:
            return set(self._fds)

    def _drop(self, fd: int) -> None:
        self._keys.pop(fd, None)
        with contextlib.suppress(OSError):
            self._epoll.unregister(fd)
        os.close(fd)

    def _run(self) -> None:
        while not self._stopping:
            try:
                ready = self._epoll.poll()
            except InterruptedError:
                continue
            for fd, _ in ready:
                if fd == self._wake_r:
                    continue
                with self._lock:
                    key = self._keys.get(fd)
                    if key is None:
                        continue
                    del self._fds[key]
                    self._drop(fd)
                try:
                    self._on_exit(key)
                except Exception:  # noqa: BLE001 - one failure must not stop the watcher
                    log.exception("recording the exit of %s", key)
