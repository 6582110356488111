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
import subprocess
import termios
from collections.abc import Callable, Sequence
from typing import Final

from cri.streaming.remotecommand import Channel

log = logging.getLogger(__name__)

READ_SIZE: Final = 32 * 1024
# Output chunks queued for a client before reading from the process pauses.
QUEUE_HIGH: Final = 64
# After the command exits, how long output may stay open (held by something it left behind).
DRAIN_AFTER_EXIT_S: Final = 2.0


class InteractiveProcess:
    """A started command line; implements `cri.streaming.runtime.Process`."""

    def __init__(self, proc: subprocess.Popen[bytes], *, stdin: int | None,
                 outputs: dict[int, Channel], terminal: int | None,
                 kill: Callable[[subprocess.Popen[bytes]], None],
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
        try:
            self._pidfd: int | None = os.pidfd_open(proc.pid)
            self._loop.add_reader(self._pidfd, self._on_exit)
        except OSError:  # no pidfd: poll
            self._pidfd = None
            self._loop.call_later(0.05, self._poll_exit)

    @classmethod
    def start(cls, argv: Sequence[str], *, env: dict[str, str], tty: bool, stdin: bool,
              stdout: bool, stderr: bool, kill: Callable[[subprocess.Popen[bytes]], None],
              cleanup: Callable[[], None]) -> InteractiveProcess:
        if tty:
            master, slave = os.openpty()
            try:
                proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                        start_new_session=True)
            except BaseException:
                os.close(master)
                raise
            finally:
                os.close(slave)
            # Read even when nobody wants stdout: a full pty would block the command.
            outputs = {master: Channel.STDOUT}
            return cls(proc, stdin=master if stdin else None, outputs=outputs,
                       terminal=master, kill=kill, cleanup=cleanup)
        pipe, null = subprocess.PIPE, subprocess.DEVNULL
        proc = subprocess.Popen(argv, stdin=pipe if stdin else null,
                                stdout=pipe if stdout else null,
                                stderr=pipe if stderr else null, env=env)
        outputs = {}
        if proc.stdout is not None:
            outputs[os.dup(proc.stdout.fileno())] = Channel.STDOUT
            proc.stdout.close()
        if proc.stderr is not None:
            outputs[os.dup(proc.stderr.fileno())] = Channel.STDERR
            proc.stderr.close()
        stdin_fd = None
        if proc.stdin is not None:
            stdin_fd = os.dup(proc.stdin.fileno())
            proc.stdin.close()
        return cls(proc, stdin=stdin_fd, outputs=outputs, terminal=None, kill=kill,
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

    def _on_exit(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self._proc.wait()
        if not self._exited.done():
            self._exited.set_result(self._proc.returncode)
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
        self._cleanup()


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
