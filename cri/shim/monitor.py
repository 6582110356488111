"""The shim program's body: create one container, then watch it until it exits.

Runs as its own process (`python -m cri.shim`, see `__main__`), started by the daemon and then
detached from it, so containers keep running and their output keeps reaching the log while the
daemon restarts. In order:

1. `daemonize()`: the started process forks and exits at once (the daemon reaps it); the child
   becomes a session leader and the child subreaper, so the container's init, and any process it
   orphans, is reparented to us and we can collect its exit status. A shim forked by the fork
   server skips the fork: it is a fresh fork already, and the server reaps it.
2. `Monitor.run()` prepares the log file, the control socket and the stdio pipes, creates the
   container (in-tree `cri.oci` or an OCI runtime binary), and reports one line on the sync fd.
   A failure at any step undoes the earlier ones, so the daemon sees an error and nothing else.
3. The loop (one thread, `selectors`): container output → CRI log records, control requests,
   child reaping. After the init exits, the pipes get a short grace to reach EOF.
4. The log is flushed and closed, then the exit file is written: once the daemon sees the exit
   file, the log is complete.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import json
import logging
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cri.logs import LogEncoder, StreamName
from cri.shim.loop import loop_binary
from cri.shim.protocol import (
    CONSOLE_SOCKET_NAME,
    EXIT_FILE_NAME,
    PID_FILE_NAME,
    RUNTIME_LOG_NAME,
    SHIM_LOG_NAME,
    SHIM_PID_FILE_NAME,
    SOCKET_NAME,
    AttachFrame,
    AttachRequest,
    ErrorReply,
    ExitStatus,
    FrameDecoder,
    LineBuffer,
    OkReply,
    PingRequest,
    ProtocolError,
    ReopenLogRequest,
    Reply,
    Request,
    SyncError,
    SyncMessage,
    SyncOk,
    decode_request,
    decode_resize,
    encode_exit_status,
    encode_frame,
    encode_reply,
    encode_sync,
)

log = logging.getLogger(__name__)

# After the init exits, how long the output pipes may stay open. A process outside the container's
# pid namespace (or one that escaped it) can inherit the pipes and never close them; we must still
# report the exit.
DRAIN_GRACE_S: Final = 2.0
# Reap and re-check at least this often, in case a SIGCHLD wake-up is lost.
TICK_S: Final = 1.0
READ_SIZE: Final = 64 * 1024
LOG_FILE_MODE: Final = 0o640
CONTROL_SEND_TIMEOUT_S: Final = 1.0
# Output queued for one attached client before it is cut off (never block the container).
ATTACH_BUFFER_LIMIT: Final = 4 * 1024 * 1024

_PR_SET_CHILD_SUBREAPER: Final = 36


class CreateError(Exception):
    """The container could not be created; the message goes to the daemon as is."""


@dataclass(frozen=True, slots=True)
class ShimConfig:
    container_id: str
    bundle: Path
    oci_root: Path
    state_dir: Path
    sync_fd: int
    log_path: Path | None = None
    stdin: bool = False
    stdin_once: bool = False  # the first attach that ends its stdin closes the container's
    tty: bool = False  # the process gets a pty; its one output stream is logged as stdout
    runtime: str | None = None  # None: the in-tree executor, cri.oci


# --- daemonizing --------------------------------------------------------------------------------


def daemonize(state_dir: Path, *, fork: bool = True) -> None:
    """Detach from the daemon. Returns in the child only; the started process exits 0.

    Everything that can fail is done before the fork, so the started process can still report it
    on the sync fd. The shim's stdin and stdout become /dev/null; stderr goes to shim.log (not
    /dev/null) so that a crash's traceback, which bypasses the logging module, is not lost.
    `fork=False` is for a fork of the fork server: one more fork would change nothing (its orphan
    would be the server's, the child subreaper, as it is) and costs about 2 ms.
    """
    os.chdir(state_dir)
    devnull = os.open(os.devnull, os.O_RDWR)
    shim_log = os.open(SHIM_LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_FILE_MODE)
    if fork and os.fork() != 0:
        os._exit(0)
    os.setsid()
    set_child_subreaper()
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.dup2(shim_log, 2)
    os.close(devnull)
    os.close(shim_log)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def set_child_subreaper() -> None:
    # the fork server calls it first: its forks find libc and prctl already resolved
    if _libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def report(sync_fd: int, message: SyncMessage) -> None:
    """Write the one sync line and close the fd."""
    try:
        data = encode_sync(message)
        while data:
            data = data[os.write(sync_fd, data) :]
    finally:
        os.close(sync_fd)


# --- the monitor --------------------------------------------------------------------------------


class Monitor:
    def __init__(self, config: ShimConfig) -> None:
        self.config = config
        self.state_dir = config.state_dir
        self._encoder = LogEncoder()
        self._log_fd: int | None = None
        self._log_failing = False
        self._listener: socket.socket | None = None
        self._wakeup_r: int | None = None
        self._outputs: dict[int, StreamName] = {}
        self._stdin_w: int | None = None  # kept open so stdin does not hit EOF; for attach
        self._terminal: int | None = None  # the pty master, when the process has a terminal
        self._init_pid = 0
        self._pidfd: int | None = None
        self._exit: ExitStatus | None = None
        self._selector = selectors.DefaultSelector()
        self._attached: dict[socket.socket, _Attachment] = {}
        self._stdin_buffer = bytearray()
        self._stdin_closing = False
        self._handlers: dict[type[Request], Callable[[Request], Reply]] = {
            PingRequest: self._on_ping,
            ReopenLogRequest: self._on_reopen_log,
        }

    def run(self) -> int:
        """Create, report, watch, record the exit. Returns the shim's exit status."""
        os.set_inheritable(self.config.sync_fd, False)  # never leak it into the container
        undo = ExitStack()
        try:
            self._prepare(undo)
            self._create(undo)
        except Exception as exc:
            if isinstance(exc, CreateError | OSError):
                message = str(exc)
                log.error("creating container %s failed: %s", self.config.container_id, message)
            else:
                message = repr(exc)
                log.exception("creating container %s failed", self.config.container_id)
            # Undo before reporting: once the daemon reads the error, nothing may be left.
            self._undo(undo)
            with contextlib.suppress(OSError):
                report(self.config.sync_fd, SyncError(message))
            return 1
        try:
            report(self.config.sync_fd, SyncOk(pid=self._init_pid, shim_pid=os.getpid()))
        except OSError:
            # The daemon gave up waiting (or died): it treats the create as failed, so the
            # container must not run unwatched. Undo kills and deletes it.
            log.exception("could not report to the daemon; removing the container")
            self._undo(undo)
            return 1
        undo.pop_all()
        log.info("container %s created, init pid %d", self.config.container_id, self._init_pid)
        binary = loop_binary()
        if binary is not None:
            self._exec_loop(binary)  # returns only if the exec failed
        self._loop()
        try:
            self._finish()
        except OSError:
            # Most likely the daemon removed the state dir under us; nobody is left to tell.
            log.exception("could not record the exit of container %s", self.config.container_id)
            return 1
        return 0

    def _undo(self, undo: ExitStack) -> None:
        try:
            undo.close()
        except Exception:
            log.exception("cleaning up after a failed create")

    # --- setup ----------------------------------------------------------------------------------

    def _prepare(self, undo: ExitStack) -> None:
        shim_pid_file = self.state_dir / SHIM_PID_FILE_NAME
        # Lets the daemon find (and kill) us if we never report back in time.
        shim_pid_file.write_text(f"{os.getpid()}\n")
        undo.callback(_unlink, shim_pid_file)

        # SIGCHLD only wakes the loop (set_wakeup_fd); reaping happens there, not in a handler.
        wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        undo.callback(os.close, wakeup_r)
        undo.callback(os.close, wakeup_w)
        signal.signal(signal.SIGCHLD, _ignore_signal)
        signal.set_wakeup_fd(wakeup_w, warn_on_full_buffer=False)
        undo.callback(signal.set_wakeup_fd, -1)
        self._wakeup_r = wakeup_r

        if self.config.log_path is not None:
            self._log_fd = self._open_log(undo)

        sock_path = self.state_dir / SOCKET_NAME
        _unlink(sock_path)  # a stale socket from an earlier shim of this state dir
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        undo.callback(listener.close)
        # NOTE: bound by its relative name (we are in the state dir): sun_path holds only 108
        # bytes, and a deep state dir plus a 64-character container id can exceed that.
        listener.bind(SOCKET_NAME)
        undo.callback(_unlink, sock_path)
        os.chmod(SOCKET_NAME, 0o600)
        listener.listen(16)
        listener.setblocking(False)
        self._listener = listener

    def _open_log(self, undo: ExitStack) -> int:
        path = self.config.log_path
        assert path is not None
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            fd = os.open(path, flags | os.O_EXCL, LOG_FILE_MODE)
            # Only a file we created is ours to remove if the create fails.
            undo.callback(_unlink, path)
        except FileExistsError:
            fd = os.open(path, flags, LOG_FILE_MODE)
        undo.callback(self._close_log)
        return fd

    def _create(self, undo: ExitStack) -> None:
        if self.config.tty:
            self._create_with_terminal(undo)
            return
        # The container's ends of its stdio: closed here once it has them (ours would keep the
        # pipes from reaching EOF), or on failure. Our ends go to the undo stack.
        theirs: list[int] = []
        try:
            out_r, out_w = os.pipe()
            undo.callback(_close_quietly, out_r)
            theirs.append(out_w)
            err_r, err_w = os.pipe()
            undo.callback(_close_quietly, err_r)
            theirs.append(err_w)
            if self.config.stdin:
                in_r, in_w = os.pipe()
                undo.callback(_close_quietly, in_w)
                self._stdin_w = in_w
            else:
                in_r = os.open(os.devnull, os.O_RDONLY)
            theirs.append(in_r)
            pid = self._run_create(in_r, out_w, err_w, err_r, None, undo)
        finally:
            for fd in theirs:
                _close_quietly(fd)
        self._watch_init(pid, undo)
        self._outputs = {out_r: "stdout", err_r: "stderr"}

    def _create_with_terminal(self, undo: ExitStack) -> None:
        """The runtime makes the pty inside the container and sends us its master over a socket
        (runc's --console-socket contract); that one fd carries input and output."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        undo.callback(listener.close)
        _unlink(self.state_dir / CONSOLE_SOCKET_NAME)
        # Relative, as for the control socket: we are in the state dir (sun_path is short).
        listener.bind(CONSOLE_SOCKET_NAME)
        undo.callback(_unlink, self.state_dir / CONSOLE_SOCKET_NAME)
        listener.listen(1)
        err_r, err_w = os.pipe()  # the runtime's own error output, for its error message
        undo.callback(_close_quietly, err_r)
        null = os.open(os.devnull, os.O_RDWR)
        try:
            pid = self._run_create(null, null, err_w, err_r, Path(CONSOLE_SOCKET_NAME), undo)
        finally:
            _close_quietly(null)
            _close_quietly(err_w)
        listener.settimeout(10)
        try:
            conn, _ = listener.accept()
            with conn:
                msg, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        except OSError as exc:
            raise CreateError(f"no terminal came over the console socket: {exc}") from exc
        if not fds:
            raise CreateError("the console socket message carried no terminal")
        master = fds[0]
        undo.callback(_close_quietly, master)
        self._terminal = master
        if self.config.stdin:
            self._stdin_w = os.dup(master)
        self._watch_init(pid, undo)
        self._outputs = {master: "stdout", err_r: "stderr"}

    def _run_create(self, stdin: int, stdout: int, stderr: int, stderr_r: int,
                    console_socket: Path | None, undo: ExitStack) -> int:
        if self.config.runtime is None:
            return self._create_in_tree(stdin, stdout, stderr, console_socket, undo)
        return self._create_with_runtime(self.config.runtime, stdin, stdout, stderr, stderr_r,
                                         console_socket, undo)

    def _watch_init(self, pid: int, undo: ExitStack) -> None:
        self._init_pid = pid
        try:
            self._pidfd = os.pidfd_open(pid)
            undo.callback(_close_quietly, self._pidfd)
        except OSError as exc:
            # No pidfd (kernel < 5.3): SIGCHLD and the periodic tick still catch the exit.
            log.warning("pidfd_open(%d) failed: %s; relying on SIGCHLD", pid, exc)

    def _create_in_tree(self, stdin: int, stdout: int, stderr: int,
                        console_socket: Path | None, undo: ExitStack) -> int:
        from cri import oci  # lazily: runc-backed shims do not need the executor
        from cri.oci.errors import OciError

        try:
            pid = oci.create(
                self.config.oci_root,
                self.config.container_id,
                self.config.bundle,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                pid_file=self.state_dir / PID_FILE_NAME,
                console_socket=console_socket,
            )
        except OciError as exc:
            raise CreateError(f"create container {self.config.container_id}: {exc}") from exc
        # Undo in this order: delete (kills the init, removes cgroup and state), then reap it.
        undo.callback(self._kill_init, pid)
        undo.callback(self._in_tree_delete)
        return pid

    def _in_tree_delete(self) -> None:
        from cri import oci
        from cri.oci.errors import OciError

        try:
            oci.delete(self.config.oci_root, self.config.container_id, force=True)
        except OciError as exc:
            log.warning("deleting container %s: %s", self.config.container_id, exc)

    def _create_with_runtime(
        self, runtime: str, stdin: int, stdout: int, stderr: int, stderr_r: int,
        console_socket: Path | None, undo: ExitStack,
    ) -> int:
        cfg = self.config
        base = [runtime, "--root", str(cfg.oci_root)]
        # NOTE: refuse an existing id before creating: after a failed create we force-delete
        # whatever the runtime left, and that must never be someone else's container.
        state = subprocess.run(
            [*base, "state", cfg.container_id],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        if state.returncode == 0:
            raise CreateError(f"container {cfg.container_id} already exists in {cfg.oci_root}")

        runtime_log = self.state_dir / RUNTIME_LOG_NAME
        pid_file = self.state_dir / PID_FILE_NAME
        argv = [
            *base,
            # Structured errors instead of scraping stderr, which is the container's stderr pipe.
            "--log", str(runtime_log), "--log-format", "json",
            "create", "--bundle", str(cfg.bundle), "--pid-file", str(pid_file),
            *(["--console-socket", str(self.state_dir / console_socket)] if console_socket else []),
            cfg.container_id,
        ]  # fmt: skip
        log.debug("running %s", argv)
        undo.callback(_unlink, pid_file)
        undo.callback(self._runtime_delete, base)
        try:
            proc = subprocess.run(argv, stdin=stdin, stdout=stdout, stderr=stderr, check=False)
        except OSError as exc:
            raise CreateError(f"cannot run OCI runtime {runtime!r}: {exc}") from exc
        if proc.returncode != 0:
            detail = _runtime_error(runtime_log) or _read_available(stderr_r)
            _unlink(runtime_log)
            raise CreateError(
                f"{Path(runtime).name} create {cfg.container_id} failed "
                f"(exit status {proc.returncode}): {detail or 'no error message'}"
            )
        try:
            return int(pid_file.read_text().strip())
        except (OSError, ValueError) as exc:
            raise CreateError(f"cannot read the init pid from {pid_file}: {exc}") from exc

    def _runtime_delete(self, base: list[str]) -> None:
        proc = subprocess.run(
            [*base, "delete", "--force", self.config.container_id],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        log.debug("runtime delete exited %d: %s", proc.returncode, proc.stderr.strip())
        self._reap()

    def _kill_init(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)

    # --- the loop -------------------------------------------------------------------------------

    def _exec_loop(self, binary: Path) -> None:
        """Become the compiled loop (cri/shim/loop), which does what `_loop` and `_finish` do
        with the fds opened here. exec keeps the pid and start time the daemon knows us by, our
        children and the subreaper flag; the interpreter's memory is what goes."""
        cfg = self.config
        outputs = {stream: fd for fd, stream in self._outputs.items()}
        assert self._listener is not None
        passed = {"--listener": self._listener.fileno(), "--stdout": outputs["stdout"],
                  "--stderr": outputs.get("stderr"), "--pidfd": self._pidfd,
                  "--stdin": self._stdin_w, "--log-fd": self._log_fd}
        argv = [str(binary), "--id", cfg.container_id, "--init-pid", str(self._init_pid)]
        for flag, fd in passed.items():
            if fd is not None:
                argv += [flag, str(fd)]
                os.set_inheritable(fd, True)
        if cfg.log_path is not None:
            argv += ["--log-path", str(cfg.log_path)]
        if self._terminal is not None:
            argv.append("--terminal")  # --stdout is the pty master
        if cfg.stdin_once:
            argv.append("--stdin-once")
        log.info("handing over to %s", binary)
        sys.stderr.flush()
        try:
            os.execv(binary, argv)
        except OSError:
            log.exception("cannot exec %s; the Python loop goes on", binary)
            for fd in passed.values():
                if fd is not None:
                    os.set_inheritable(fd, False)

    def _loop(self) -> None:
        sel = self._selector
        for fd in self._outputs:
            sel.register(fd, selectors.EVENT_READ, self._on_output)
        if self._pidfd is not None:
            sel.register(self._pidfd, selectors.EVENT_READ, self._on_init_exit)
        assert self._wakeup_r is not None and self._listener is not None
        sel.register(self._wakeup_r, selectors.EVENT_READ, self._on_signal)
        sel.register(self._listener, selectors.EVENT_READ, self._on_accept)

        drain_deadline: float | None = None
        while True:
            self._reap()
            if self._exit is not None:
                if not self._outputs:
                    break
                now = time.monotonic()
                if drain_deadline is None:
                    drain_deadline = now + DRAIN_GRACE_S
                elif now >= drain_deadline:
                    log.warning(
                        "output still open %.1fs after the init exited; a process outside the "
                        "container holds it. Stopping.",
                        DRAIN_GRACE_S,
                    )
                    break
                timeout = min(TICK_S, drain_deadline - now)
            else:
                timeout = TICK_S
            for key, _ in sel.select(timeout):
                key.data(key)

    def _on_output(self, key: selectors.SelectorKey) -> None:
        fd = key.fd
        stream = self._outputs[fd]
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return  # a tty's master shares O_NONBLOCK with the stdin end attach writes to
        except OSError as exc:
            # A pty master reads EIO once the last slave fd is closed: that is its EOF.
            if not (fd == self._terminal and exc.errno == errno.EIO):
                log.error("reading %s: %s", stream, exc)
            data = b""
        now = time.time_ns()
        if not data:
            self._selector.unregister(fd)
            os.close(fd)
            del self._outputs[fd]
            self._write_log(self._encoder.flush(stream, now))
            return
        if self._log_fd is not None:
            self._write_log(self._encoder.feed(stream, data, now))
        if self._attached:
            kind = AttachFrame.STDOUT if stream == "stdout" else AttachFrame.STDERR
            frame = encode_frame(kind, data)
            for conn, attachment in list(self._attached.items()):
                if kind in attachment.outputs:
                    self._send_attached(conn, attachment, frame)

    def _on_init_exit(self, key: selectors.SelectorKey) -> None:
        # Only a wake-up: _reap collects the status. The pidfd stays readable from now on.
        self._selector.unregister(key.fd)

    def _on_signal(self, key: selectors.SelectorKey) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(key.fd, 512):
                pass

    def _reap(self) -> None:
        """Collect every exited child: the init, and orphans reparented to us as subreaper."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self._init_pid and self._exit is None:
                self._exit = _exit_status(status, time.time_ns())
                log.info("init %d exited: %s", pid, self._exit)
            else:
                log.debug("reaped orphan %d (status %#x)", pid, status)

    # --- control socket -------------------------------------------------------------------------

    def _on_accept(self, key: selectors.SelectorKey) -> None:
        assert self._listener is not None
        try:
            conn, _ = self._listener.accept()
        except BlockingIOError:
            return
        # Readiness comes from the selector, so recv never waits; the timeout only bounds sendall
        # to a client that stops reading.
        conn.settimeout(CONTROL_SEND_TIMEOUT_S)
        lines = LineBuffer()
        self._selector.register(
            conn, selectors.EVENT_READ, lambda k: self._on_control(k, conn, lines)
        )

    def _on_control(
        self, key: selectors.SelectorKey, conn: socket.socket, lines: LineBuffer
    ) -> None:
        try:
            data = conn.recv(4096)
            if not data:
                self._close_control(conn)
                return
            for line in lines.feed(data):
                attach = _attach_request(line)
                if attach is not None:
                    self._start_attach(conn, attach, lines.pending())
                    return
                conn.sendall(encode_reply(self._dispatch(line)))
        except ProtocolError as exc:
            with contextlib.suppress(OSError):
                conn.sendall(encode_reply(ErrorReply(str(exc))))
            self._close_control(conn)
        except OSError as exc:
            log.debug("control connection: %s", exc)
            self._close_control(conn)

    def _dispatch(self, line: bytes) -> Reply:
        try:
            request = decode_request(line)
        except ProtocolError as exc:
            return ErrorReply(str(exc))
        # Reads at DEBUG, changes at INFO: the daemon may ping every shim on every relist.
        log.log(
            logging.DEBUG if request.op == PingRequest.op else logging.INFO,
            "request %s",
            request.op,
        )
        try:
            return self._handlers[type(request)](request)
        except Exception as exc:  # one bad request must not take the container's monitor down
            log.exception("control request %s failed", request.op)
            return ErrorReply(f"{request.op}: {exc}")

    def _close_control(self, conn: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn)
        conn.close()

    def _on_ping(self, request: Request) -> Reply:
        return OkReply(pid=self._init_pid)

    def _on_reopen_log(self, request: Request) -> Reply:
        path = self.config.log_path
        if path is None:
            return ErrorReply("container has no log path")
        # Open the new file before closing the old: if the open fails, output keeps going to the
        # old file instead of nowhere.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_FILE_MODE)
        except OSError as exc:
            return ErrorReply(f"reopen {path}: {exc}")
        self._close_log()
        self._log_fd = fd
        self._log_failing = False
        log.info("reopened log %s", path)
        return OkReply()

    # --- attach -------------------------------------------------------------------------------

    def _start_attach(self, conn: socket.socket, request: AttachRequest, rest: bytes) -> None:
        self._selector.unregister(conn)
        if request.stdin and self._stdin_w is None:
            conn.sendall(encode_reply(ErrorReply("the container was not created with stdin")))
            conn.close()
            return
        if self._exit is not None and not self._outputs:
            conn.sendall(encode_reply(ErrorReply("the container has exited")))
            conn.close()
            return
        conn.sendall(encode_reply(OkReply(pid=self._init_pid)))
        conn.setblocking(False)
        outputs = set()
        if request.stdout:
            outputs.add(AttachFrame.STDOUT)
        if request.stderr:
            outputs.add(AttachFrame.STDERR)
        attachment = _Attachment(outputs=frozenset(outputs), stdin=request.stdin)
        self._attached[conn] = attachment
        log.info("attached (stdin=%s stdout=%s stderr=%s); %d attached",
                 request.stdin, request.stdout, request.stderr, len(self._attached))
        self._selector.register(conn, selectors.EVENT_READ,
                                lambda k: self._on_attached(k, conn))
        if request.stdin and self._stdin_w is not None:
            os.set_blocking(self._stdin_w, False)  # a container not reading must not stall us
        if rest:
            self._attached_input(conn, attachment, rest)

    def _on_attached(self, key: selectors.SelectorKey, conn: socket.socket) -> None:
        attachment = self._attached.get(conn)
        if attachment is None:
            return
        if key.events & selectors.EVENT_WRITE and attachment.outbuf:
            self._flush_attached(conn, attachment)
        if conn not in self._attached or not key.events & selectors.EVENT_READ:
            return
        try:
            data = conn.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._detach(conn, "the client closed the stream")
            return
        self._attached_input(conn, attachment, data)

    def _attached_input(self, conn: socket.socket, attachment: _Attachment, data: bytes) -> None:
        try:
            frames = attachment.decoder.feed(data)
        except ProtocolError as exc:
            self._detach(conn, str(exc))
            return
        for kind, payload in frames:
            if kind == AttachFrame.STDIN and attachment.stdin:
                if len(self._stdin_buffer) > ATTACH_BUFFER_LIMIT:
                    log.warning("the container is not reading its stdin: input dropped")
                else:
                    self._stdin_buffer += payload
            elif kind == AttachFrame.STDIN_CLOSE and attachment.stdin:
                attachment.stdin = False
                if self.config.stdin_once:
                    self._stdin_closing = True
            elif kind == AttachFrame.RESIZE and self._terminal is not None:
                with contextlib.suppress(ProtocolError, OSError):
                    width, height = decode_resize(payload)
                    fcntl.ioctl(self._terminal, termios.TIOCSWINSZ,
                                struct.pack("HHHH", height, width, 0, 0))
        self._flush_stdin()

    def _flush_stdin(self) -> None:
        if self._stdin_w is None:
            self._stdin_buffer.clear()
            return
        while self._stdin_buffer:
            try:
                n = os.write(self._stdin_w, self._stdin_buffer)
            except BlockingIOError:
                break
            except OSError as exc:
                log.info("container stdin closed: %s", exc)
                self._stdin_buffer.clear()
                if self._stdin_w in self._selector.get_map():
                    self._selector.unregister(self._stdin_w)
                break
            del self._stdin_buffer[:n]
        if self._stdin_w is not None:
            # Written when the pipe has room again; the selector says when.
            registered = self._stdin_w in self._selector.get_map()
            if self._stdin_buffer and not registered:
                self._selector.register(self._stdin_w, selectors.EVENT_WRITE,
                                        lambda k: self._flush_stdin())
            elif not self._stdin_buffer and registered:
                self._selector.unregister(self._stdin_w)
        if not self._stdin_buffer and self._stdin_closing and self._stdin_w is not None:
            log.info("stdin once: closing the container's stdin")
            if self._terminal is not None:
                # A terminal has no half-close: end of input is the EOF character, as typed.
                with contextlib.suppress(OSError):
                    os.write(self._stdin_w, b"\x04")
            _close_quietly(self._stdin_w)
            self._stdin_w = None

    def _send_attached(self, conn: socket.socket, attachment: _Attachment, frame: bytes) -> None:
        attachment.outbuf += frame
        if len(attachment.outbuf) > ATTACH_BUFFER_LIMIT:
            self._detach(conn, "the client is not reading its output")
            return
        self._flush_attached(conn, attachment)

    def _flush_attached(self, conn: socket.socket, attachment: _Attachment) -> None:
        try:
            while attachment.outbuf:
                n = conn.send(attachment.outbuf)
                del attachment.outbuf[:n]
        except BlockingIOError:
            pass
        except OSError:
            self._detach(conn, "the client went away")
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if attachment.outbuf else 0)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.modify(conn, events, lambda k: self._on_attached(k, conn))

    def _detach(self, conn: socket.socket, why: str) -> None:
        attachment = self._attached.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn)
        conn.close()
        if attachment is not None and attachment.stdin and self.config.stdin_once:
            self._stdin_closing = True
            self._flush_stdin()
        log.info("detached: %s; %d attached", why, len(self._attached))

    # --- log and exit file ----------------------------------------------------------------------

    def _write_log(self, data: bytes) -> None:
        if not data or self._log_fd is None:
            return
        try:
            while data:
                data = data[os.write(self._log_fd, data) :]
        except OSError as exc:
            # NOTE: output is dropped rather than buffered: a full disk must not grow the shim
            # without bound, and blocking would stall the container on its pipes. Logged once per
            # failing streak.
            if not self._log_failing:
                log.error("writing the container log failed, dropping output: %s", exc)
            self._log_failing = True
        else:
            if self._log_failing:
                log.info("writing the container log works again")
            self._log_failing = False

    def _close_log(self) -> None:
        if self._log_fd is not None:
            _close_quietly(self._log_fd)
            self._log_fd = None

    def _finish(self) -> None:
        assert self._exit is not None
        now = time.time_ns()
        for fd, stream in list(self._outputs.items()):
            self._write_log(self._encoder.flush(stream, now))
            _close_quietly(fd)
        self._outputs.clear()
        self._write_log(self._encoder.flush_all(now))
        self._close_log()
        if self._listener is not None:
            self._listener.close()
            _unlink(self.state_dir / SOCKET_NAME)
        if self._stdin_w is not None:
            _close_quietly(self._stdin_w)
        for conn, attachment in list(self._attached.items()):
            # Best effort: what is still queued, then EOF, which tells the client it has ended.
            with contextlib.suppress(OSError):
                conn.setblocking(True)
                conn.settimeout(CONTROL_SEND_TIMEOUT_S)
                conn.sendall(attachment.outbuf)
            conn.close()
        self._attached.clear()
        write_atomically(self.state_dir / EXIT_FILE_NAME, encode_exit_status(self._exit))
        log.info("exit file written: %s", self._exit)


@dataclass(slots=True)
class _Attachment:
    outputs: frozenset[AttachFrame]
    stdin: bool  # still sending stdin
    decoder: FrameDecoder = field(default_factory=FrameDecoder)
    outbuf: bytearray = field(default_factory=bytearray)


def _attach_request(line: bytes) -> AttachRequest | None:
    try:
        request = decode_request(line)
    except ProtocolError:
        return None
    return request if isinstance(request, AttachRequest) else None


def write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old file or the whole new one, also after a crash (temp, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _exit_status(wait_status: int, finished_at: int) -> ExitStatus:
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        return ExitStatus(exit_code=128 + sig, finished_at=finished_at, signal=sig)
    return ExitStatus(exit_code=os.waitstatus_to_exitcode(wait_status), finished_at=finished_at)


def _runtime_error(runtime_log: Path) -> str:
    """The last error message in an OCI runtime's JSON log (runc's `--log-format json`)."""
    try:
        lines = runtime_log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
                return str(entry.get("msg", "")).strip()
    return ""


def _read_available(fd: int) -> str:
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    with contextlib.suppress(OSError):
        while chunk := os.read(fd, READ_SIZE):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace").strip()


def _ignore_signal(signum: int, frame: object) -> None:
    pass


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
