"""An interactive exec: the OCI command line run with pipes (or a terminal) that the streaming
server reads and writes through asyncio.

NOTE: with a terminal the command line gets a pty of ours as its stdio and, as `runc exec -t`
does in a shell, copies between it and the container's pty. That costs a second pty but works
the same for runc, crun and the in-tree executor, keeps the command line our child (so its exit
status is the process's), and needs no --console-socket, whose detached process nobody would
reap. A resize sets our pty's size and sends SIGWINCH, which each of them answers by copying the
size onward.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import signal
import struct
import termios
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from cri.shim.forkserver import ForkedProcess
from cri.streaming.remotecommand import Channel

if TYPE_CHECKING:
    from cri.task.runner import ExecProcess

# Starts the exec command line with these fds as its stdin, stdout and stderr (closed by the
# caller afterwards); True: in a session of its own, for a terminal.
Spawn = Callable[[int, int, int, bool], "ExecProcess"]

log = logging.getLogger(__name__)

READ_SIZE: Final = 32 * 1024
# Output chunks queued for a client before reading from the process pauses.
QUEUE_HIGH: Final = 64
# After the command exits, how long output may stay open (held by something it left behind).
DRAIN_AFTER_EXIT_S: Final = 2.0


class InteractiveProcess:
    """A started command line; implements `cri.streaming.runtime.Process`."""

    def __init__(self, proc: ExecProcess, *, stdin: int | None,
                 outputs: dict[int, Channel], terminal: int | None,
                 kill: Callable[[ExecProcess], None],
                 cleanup: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._proc = proc
        self._stdin = stdin
        self._terminal = terminal
        self._outputs = dict(outputs)
        self._kill = kill
        self._cleanup = cleanup
        self._queue: asyncio.Queue[tuple[Channel, bytes] | None] = asyncio.Queue()
        self._paused = False
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._closed = False
        for fd in self._outputs:
            os.set_blocking(fd, False)
            self._loop.add_reader(fd, self._on_readable, fd)
        if not self._outputs:
            self._queue.put_nowait(None)
        if stdin is not None and stdin != terminal:
            os.set_blocking(stdin, False)
        self._pidfd: int | None = None
        self._status_fd = proc.status_fd if isinstance(proc, ForkedProcess) else None
        if self._status_fd is not None:
            # not our child: its exit comes over the fork server's status pipe
            self._loop.add_reader(self._status_fd, self._on_status)
            return
        try:
            self._pidfd = os.pidfd_open(proc.pid)
            self._loop.add_reader(self._pidfd, self._on_exit)
        except OSError:  # no pidfd: poll
            self._loop.call_later(0.05, self._poll_exit)

    @classmethod
    def start(cls, spawn: Spawn, *, tty: bool, stdin: bool, stdout: bool, stderr: bool,
              kill: Callable[[ExecProcess], None],
              cleanup: Callable[[], None]) -> InteractiveProcess:
        if tty:
            master, slave = os.openpty()
            try:
                proc = spawn(slave, slave, slave, True)
            except BaseException:
                os.close(master)
                raise
            finally:
                os.close(slave)
            # Read even when nobody wants stdout: a full pty would block the command.
            outputs = {master: Channel.STDOUT}
            return cls(proc, stdin=master if stdin else None, outputs=outputs,
                       terminal=master, kill=kill, cleanup=cleanup)
        null = os.open(os.devnull, os.O_RDWR)
        ours: dict[str, int] = {}
        theirs: dict[str, int] = {}  # closed here once the command line has them
        try:
            for name, wanted in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)):
                if wanted:
                    r, w = os.pipe()
                    ours[name], theirs[name] = (w, r) if name == "stdin" else (r, w)
            proc = spawn(theirs.get("stdin", null), theirs.get("stdout", null),
                         theirs.get("stderr", null), False)
        except BaseException:
            for fd in ours.values():
                os.close(fd)
            raise
        finally:
            for fd in (null, *theirs.values()):
                os.close(fd)
        outputs = {ours[name]: channel for name, channel in (("stdout", Channel.STDOUT),
                                                              ("stderr", Channel.STDERR))
                   if name in ours}
        return cls(proc, stdin=ours.get("stdin"), outputs=outputs, terminal=None, kill=kill,
                   cleanup=cleanup)

    @property
    def pid(self) -> int:
        return self._proc.pid

    # --- output ---------------------------------------------------------------------------

    def _on_readable(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            # A pty master reads EIO once the last slave is closed: its EOF.
            if exc.errno != errno.EIO:
                log.debug("reading exec output: %s", exc)
            data = b""
        if not data:
            self._close_output(fd)
            return
        self._queue.put_nowait((self._outputs[fd], data))
        if self._queue.qsize() >= QUEUE_HIGH and not self._paused:
            self._paused = True
            for out in self._outputs:
                self._loop.remove_reader(out)

    def _close_output(self, fd: int) -> None:
        if fd not in self._outputs:
            return
        self._loop.remove_reader(fd)
        del self._outputs[fd]
        if fd != self._terminal:
            os.close(fd)
        if not self._outputs:
            self._queue.put_nowait(None)

    async def output(self) -> tuple[Channel, bytes] | None:
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # stays at the end for later calls
        if self._paused and self._queue.qsize() < QUEUE_HIGH // 2:
            self._paused = False
            for fd in self._outputs:
                self._loop.add_reader(fd, self._on_readable, fd)
        return item

    # --- input ----------------------------------------------------------------------------

    async def write_stdin(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._stdin is not None:
            try:
                n = os.write(self._stdin, view)
            except BlockingIOError:
                ready: asyncio.Future[None] = self._loop.create_future()
                fd = self._stdin
                self._loop.add_writer(fd, _set_once, ready)
                try:
                    await ready
                finally:
                    self._loop.remove_writer(fd)
                continue
            except OSError:
                return  # the command closed its stdin or exited: input has nowhere to go
            view = view[n:]

    async def close_stdin(self) -> None:
        if self._stdin is None:
            return
        if self._stdin == self._terminal:
            # A terminal has no half-close: end of input is the EOF character, as typed.
            await self.write_stdin(b"\x04")
        else:
            os.close(self._stdin)
        self._stdin = None

    def resize(self, width: int, height: int) -> None:
        if self._terminal is None or width <= 0 or height <= 0:
            return
        with contextlib.suppress(OSError):
            fcntl.ioctl(self._terminal, termios.TIOCSWINSZ,
                        struct.pack("HHHH", height, width, 0, 0))
            os.kill(self._proc.pid, signal.SIGWINCH)

    # --- end ------------------------------------------------------------------------------

    def _on_status(self) -> None:
        if self._proc.poll() is None:  # a partial line: wait for the rest
            return
        assert self._status_fd is not None
        self._loop.remove_reader(self._status_fd)
        self._status_fd = None
        self._on_exit()

    def _on_exit(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        code = self._proc.wait()
        if not self._exited.done():
            self._exited.set_result(code)
        self._loop.call_later(DRAIN_AFTER_EXIT_S, self._stop_reading)

    def _poll_exit(self) -> None:
        if self._proc.poll() is None:
            self._loop.call_later(0.05, self._poll_exit)
        else:
            self._on_exit()

    def _stop_reading(self) -> None:
        for fd in list(self._outputs):
            log.info("exec output still open %.0f s after the command exited; closing it",
                     DRAIN_AFTER_EXIT_S)
            self._close_output(fd)

    async def wait(self) -> int | None:
        code = await self._exited
        while (await self.output()) is not None:
            pass
        self.close()
        return code

    async def abort(self) -> None:
        if not self._exited.done():
            await asyncio.to_thread(self._kill, self._proc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exited), 5)
        self.close()

    def close(self) -> None:
        """Release every fd; idempotent."""
        if self._closed:
            return
        self._closed = True
        for fd in list(self._outputs):
            self._close_output(fd)
        if self._stdin is not None and self._stdin != self._terminal:
            with contextlib.suppress(OSError):
                os.close(self._stdin)
        self._stdin = None
        if self._terminal is not None:
            with contextlib.suppress(OSError):
                os.close(self._terminal)
            self._terminal = None
        if self._pidfd is not None and self._exited.done():
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if self._status_fd is not None:
            self._loop.remove_reader(self._status_fd)
            self._status_fd = None
        if isinstance(self._proc, ForkedProcess):
            self._proc.close()
        self._cleanup()


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
