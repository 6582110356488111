"""A fork server for shims and exec command lines, so that neither pays an interpreter start-up.

A shim's Python start and imports (the executor included) cost about 70 ms of CPU here, more than
the rest of a StartContainer; an ExecSync's `cri-oci exec` about 20 ms of its 25. The fork server
(`python -m cri.shim --fork-server`) is started once by the daemon, imports what both need, and
then forks one process per order: a fork of a process that has everything loaded takes about a
millisecond. The daemon itself must never fork without exec (gRPC's threads); the server is
single-threaded, so its forks are safe.

    daemon                                   fork server
    socketpair; Popen(--fork-server --socket-fd F)
                                        <--  b"ready" (imports done)
    sendmsg({"kind": "shim", "argv": [...]}, [sync_w])
                                             fork: the child is that shim, as if started with
                                             those arguments and --sync-fd
    reads the sync line on sync_r       <--  {"pid": ..., "shim_pid": N} or {"error": ...}
    sendmsg({"kind": "oci", "argv": [...]}, [stdin, stdout, stderr, status_w])
                                             fork: the child runs `cri-oci ARGS` with that stdio
    reads status_r                      <--  {"pid": N}, later {"exit_code": C}

The server does not wait for its forks: each is what runs on (a shim, an exec's command line),
with no second fork to detach, and SIGCHLD reaps it when it ends; the server is also the child
subreaper of what they leave running. Shims outlive the server and the daemon; the server exits
when its socket closes, so it never outlives its daemon. One owner: the daemon's
`ForkServer`; orders from many threads are sent one at a time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from typing import Final

from cri.subprocesses import helper_env, module_argv

log = logging.getLogger(__name__)

READY: Final = b"ready"
READY_TIMEOUT_S: Final = 30.0
MAX_ORDER: Final = 64 * 1024


# What an order asks for, and how many fds come with it.
SHIM: Final = "shim"  # the shim's arguments; fds: its sync pipe
OCI: Final = "oci"  # `cri-oci ARGS`; fds: its stdin, stdout and stderr, and its status pipe
FDS: Final = {SHIM: 1, OCI: 4}


def encode_order(kind: str, argv: list[str]) -> bytes:
    return json.dumps({"kind": kind, "argv": argv}).encode()


def decode_order(data: bytes) -> tuple[str, list[str]]:
    order = json.loads(data)
    kind = order.get("kind") if isinstance(order, dict) else None
    argv = order.get("argv") if isinstance(order, dict) else None
    if kind not in FDS or not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"not an order: {data[:200]!r}")
    return kind, argv


class ForkServerGone(Exception):
    """The server is not running (it was never started, failed, or died)."""


class ForkServer:
    """The daemon's side. `order` hands one shim's arguments over; a server that died is
    restarted by the next order, and that order is refused (its caller starts a shim cold)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._sock: socket.socket | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._starting = False

    @property
    def running(self) -> bool:
        return self._sock is not None

    @property
    def pid(self) -> int | None:
        return self._pid

    def start(self) -> None:
        """Start the server on a thread of its own, so the daemon's start-up does not wait."""
        if self.enabled:
            threading.Thread(target=self._start, name="shim-fork-server",
                             daemon=True).start()

    def _start(self) -> None:
        # NOTE: launched outside the lock: orders meanwhile find no server and start cold
        # instead of waiting for it.
        with self._lock:
            if self._sock is not None or self._closed or self._starting:
                return
            self._starting = True
        try:
            launched: tuple[socket.socket, int] | None = _launch()
        except (OSError, subprocess.SubprocessError, TimeoutError) as exc:
            log.warning("the shim fork server did not start (%s); shims start cold", exc)
            launched = None
        with self._lock:
            self._starting = False
            if launched is not None and self._closed:
                launched[0].close()  # the server sees EOF and exits
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(launched[1], 0)
            elif launched is not None:
                self._sock, self._pid = launched

    def order(self, args: list[str], sync_w: int) -> None:
        """Have the server fork the shim for `args`, reporting on `sync_w` (ours to close).
        Raises ForkServerGone if there is no server to take it."""
        self._send(SHIM, args, [sync_w])

    def run_oci(self, args: list[str], stdin: int, stdout: int, stderr: int) -> ForkedProcess:
        """`cri-oci ARGS` in a fork of the server, with these fds as its stdio (ours to close):
        what an ExecSync runs, without an interpreter's start-up. Raises ForkServerGone."""
        status_r, status_w = os.pipe()
        try:
            try:
                self._send(OCI, args, [stdin, stdout, stderr, status_w])
            finally:
                os.close(status_w)
            return ForkedProcess.started(status_r)
        except BaseException:
            os.close(status_r)
            raise

    def _send(self, kind: str, args: list[str], fds: list[int]) -> None:
        with self._lock:
            sock = self._sock
            if sock is None:
                raise ForkServerGone("no fork server")
            try:
                socket.send_fds(sock, [encode_order(kind, args)], fds)
            except OSError as exc:
                log.warning("the shim fork server is gone (%s); restarting it", exc)
                self._drop_locked()
                threading.Thread(target=self._start, daemon=True).start()
                raise ForkServerGone(str(exc)) from None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop_locked()

    def _drop_locked(self) -> None:
        if self._sock is not None:
            self._sock.close()  # the server sees EOF and exits
            self._sock = None
        if self._pid is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._pid, 0)
            self._pid = None


class ForkedProcess:
    """A command line the fork server ran: the part of `subprocess.Popen` an exec uses.

    It is not our child (a grandchild of the server, reparented away), so its status comes over
    a pipe: `{"pid": N}` when it starts, `{"exit_code": C}` when its command is done. EOF without
    the second means it was killed (returncode -9, as Popen says of a SIGKILL). Safe to use from
    several threads (the streaming server's loop watches it while another thread kills it); the
    pipe stays open until `close()`, so no thread ever waits on an fd another has closed."""

    def __init__(self, status_fd: int) -> None:
        self.pid = 0
        self.returncode: int | None = None
        self._fd = status_fd
        os.set_blocking(status_fd, False)
        self._buf = b""
        self._eof = False
        self._closed = False
        self._lock = threading.Lock()

    @classmethod
    def started(cls, status_fd: int, timeout: float = READY_TIMEOUT_S) -> ForkedProcess:
        proc = cls(status_fd)
        line = proc._line(timeout)
        if line is None or "pid" not in line:
            raise ForkServerGone("the forked command did not start")
        proc.pid = int(line["pid"])
        return proc

    @property
    def status_fd(self) -> int:
        """Readable when the command is done, or killed."""
        return self._fd

    def poll(self) -> int | None:
        if self.returncode is None:
            self._finish(self._line(0))
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise subprocess.TimeoutExpired(f"forked process {self.pid}", timeout or 0)
            self._finish(self._line(remaining))
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._fd)

    def _finish(self, line: dict[str, int] | None) -> None:
        with self._lock:
            if self.returncode is not None:
                return
            if line is not None and "exit_code" in line:
                self.returncode = int(line["exit_code"])
            elif self._eof and b"\n" not in self._buf:
                self.returncode = -signal.SIGKILL

    def _line(self, timeout: float | None) -> dict[str, int] | None:
        """The next status line; None at the timeout or at EOF."""
        import select

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if b"\n" in self._buf:
                    line, self._buf = self._buf.split(b"\n", 1)
                    value = json.loads(line)
                    return value if isinstance(value, dict) else None
                if self._eof or self._closed:
                    return None
                try:
                    chunk: bytes | None = os.read(self._fd, 256)
                except BlockingIOError:
                    chunk = None
                if chunk is not None:
                    if chunk:
                        self._buf += chunk
                    else:
                        self._eof = True
                    continue
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if remaining == 0.0:
                return None
            # NOTE: in slices, so that a close() from another thread is seen soon
            try:
                select.select([self._fd], [], [], 0.05 if remaining is None
                              else min(remaining, 0.05))
            except (OSError, ValueError):  # closed meanwhile
                return None


def _launch() -> tuple[socket.socket, int]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        proc = subprocess.Popen(
            module_argv("cri.shim", "--fork-server", "--socket-fd", str(theirs.fileno()),
                        site=False),
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=None,
            cwd="/", env=helper_env(),
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    ours.settimeout(READY_TIMEOUT_S)
    try:
        if ours.recv(16) != READY:
            raise OSError(f"the fork server exited ({proc.wait()}) before it was ready")
    except BaseException:
        ours.close()
        proc.kill()
        proc.wait()
        raise
    ours.settimeout(None)
    log.info("shim fork server %d ready", proc.pid)
    return ours, proc.pid


# --- the server ---------------------------------------------------------------------------------


def serve(sock: socket.socket,
          handlers: Mapping[str, Callable[[list[str], list[int]], int]]) -> int:
    """The server's loop: one order at a time until the daemon closes the socket. A handler
    runs in a fresh fork, which exits with what it returns; the server does not wait for it, so
    a fork may be what runs on (a shim, an exec's command line) without forking again.

    The server is the parent of its forks and the child subreaper of what they leave running:
    an exec's command line is reaped here when it ends, not left to the node's init; so is a
    shim, once its container is gone. SIGCHLD reaps them (recv_fds is retried after the handler,
    PEP 475)."""
    from cri.shim.monitor import set_child_subreaper

    set_child_subreaper()
    signal.signal(signal.SIGCHLD, _reap_all)
    sock.sendall(READY)
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_ORDER, 4)
        except InterruptedError:
            continue
        if not data:
            return 0
        try:
            kind, args = decode_order(data)
            if len(fds) != FDS[kind]:
                raise ValueError(f"{kind} order with {len(fds)} fds")
        except ValueError:
            for fd in fds:  # closing the sync or status pipe tells the daemon it failed
                os.close(fd)
            continue
        if os.fork() == 0:
            code = 1
            try:
                # the fork waits for its own children (an exec's): no reaping behind its back
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                sock.close()
                code = handlers[kind](args, fds)
            finally:
                os._exit(code)  # never back into the server's loop
        for fd in fds:
            os.close(fd)


def _reap_all(signum: int, frame: object) -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
