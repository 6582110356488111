"""A fork server for shims, so that starting a container pays no interpreter start-up.

A shim's Python start and imports (the executor included) cost about 70 ms of CPU here, more than
the rest of a StartContainer. The fork server (`python -m cri.shim --fork-server`) is started
once by the daemon, imports what a shim needs, and then forks one shim per order: a fork of a
process that has everything loaded takes about a millisecond. The daemon itself must never fork
without exec (gRPC's threads); the server is single-threaded, so its forks are safe.

    daemon                                   fork server
    socketpair; Popen(--fork-server --socket-fd F)
                                        <--  b"ready" (imports done)
    per container: a sync pipe; sendmsg(order, [sync_w])
         order: the shim's arguments, as a JSON array
                                             fork: the child is that shim, as if started with
                                             those arguments and --sync-fd; the server reaps the
                                             child once it has detached
    reads the sync line on sync_r       <--  {"pid": ..., "shim_pid": N} or {"error": ...}

Shims detach as a cold one does (a second fork, a new session), so they outlive the server and
the daemon. The server exits when its socket closes: it never outlives its daemon. One owner:
the daemon's `ForkServer`; orders from many threads are sent one at a time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import threading
from collections.abc import Callable
from typing import Final

from cri.subprocesses import helper_env, module_argv

log = logging.getLogger(__name__)

READY: Final = b"ready"
READY_TIMEOUT_S: Final = 30.0
MAX_ORDER: Final = 64 * 1024


def encode_order(argv: list[str]) -> bytes:
    return json.dumps(argv).encode()


def decode_order(data: bytes) -> list[str]:
    argv = json.loads(data)
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"an order is a list of strings: {data[:200]!r}")
    return argv


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

    @property
    def running(self) -> bool:
        return self._sock is not None

    @property
    def pid(self) -> int | None:
        return self._pid

    def start(self) -> None:
        """Start the server on a thread of its own, so the daemon's start-up does not wait."""
        if self.enabled:
            threading.Thread(target=self._start_locked, name="shim-fork-server",
                             daemon=True).start()

    def _start_locked(self) -> None:
        with self._lock:
            if self._sock is None and not self._closed:
                try:
                    self._sock, self._pid = _launch()
                except (OSError, subprocess.SubprocessError, TimeoutError) as exc:
                    log.warning("the shim fork server did not start (%s); shims start cold",
                                exc)

    def order(self, args: list[str], sync_w: int) -> None:
        """Have the server fork the shim for `args`, reporting on `sync_w` (ours to close).
        Raises ForkServerGone if there is no server to take it."""
        with self._lock:
            sock = self._sock
            if sock is None:
                raise ForkServerGone("no fork server")
            try:
                socket.send_fds(sock, [encode_order(args)], [sync_w])
            except OSError as exc:
                log.warning("the shim fork server is gone (%s); restarting it", exc)
                self._drop_locked()
                threading.Thread(target=self._start_locked, daemon=True).start()
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


def serve(sock: socket.socket, fork_shim: Callable[[list[str], int], int]) -> int:
    """The server's loop: one order at a time until the daemon closes the socket."""
    sock.sendall(READY)
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_ORDER, 1)
        except InterruptedError:
            continue
        if not data:
            return 0
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            continue
        sync_w = fds[0]
        try:
            args = decode_order(data)
        except ValueError:
            os.close(sync_w)  # EOF without a sync line: the daemon reports a broken shim
            continue
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                sock.close()
                code = fork_shim(args, sync_w)
            finally:
                os._exit(code)  # never back into the server's loop
        os.close(sync_w)
        # The child only detaches (one more fork) and exits, so this wait is short.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
