"""The daemon's side of the shim: start one, talk to it, read how its container ended.

Nothing here forks without exec (the daemon runs gRPC threads): the shim is started with
`subprocess.Popen`, and everything after that goes through the sync pipe, the control socket and
the files in the state directory (see `cri.shim.protocol`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from cri.shim.errors import (
    ShimError,
    ShimRequestError,
    ShimStartError,
    ShimStartTimeout,
    ShimUnavailable,
    TaskRefused,
)
from cri.shim.forkserver import ForkServer, ForkServerGone
from cri.shim.protocol import (
    EXIT_FILE_NAME,
    MAX_LINE,
    SHIM_LOG_NAME,
    SHIM_PID_FILE_NAME,
    SOCKET_NAME,
    AttachRequest,
    ErrorReply,
    ExitStatus,
    LineBuffer,
    OkReply,
    PingRequest,
    ProtocolError,
    ReopenLogRequest,
    Request,
    SyncError,
    decode_exit_status,
    decode_reply,
    decode_sync,
    encode_request,
)
from cri.subprocesses import helper_env, module_argv

log = logging.getLogger(__name__)

# Creating a container can take a while on a loaded node (runc, cgroups, mounts); the kubelet's
# own CreateContainer deadline is 2 minutes and StartContainer follows it.
DEFAULT_START_TIMEOUT_S: Final = 60.0
DEFAULT_REQUEST_TIMEOUT_S: Final = 5.0
_SUN_PATH_MAX: Final = 107  # sun_path is 108 bytes with its NUL


def shim_args(
    container_id: str,
    *,
    bundle: Path,
    oci_root: Path,
    state_dir: Path,
    log_path: Path | None = None,
    stdin: bool = False,
    stdin_once: bool = False,
    tty: bool = False,
    runtime: str | None = None,
) -> list[str]:
    """The shim's arguments but its sync fd (the contract of `python -m cri.shim`, and of an
    order to the fork server)."""
    argv = [
        "--id", container_id,
        "--bundle", str(bundle),
        "--oci-root", str(oci_root),
        "--state-dir", str(state_dir),
    ]  # fmt: skip
    if log_path is not None:
        argv += ["--log-path", str(log_path)]
    if stdin:
        argv.append("--stdin")
    if stdin_once:
        argv.append("--stdin-once")
    if tty:
        argv.append("--tty")
    if runtime is not None:
        argv += ["--runtime", runtime]
    return argv


def start_shim(
    container_id: str,
    *,
    bundle: Path,
    oci_root: Path,
    state_dir: Path,
    log_path: Path | None = None,
    stdin: bool = False,
    stdin_once: bool = False,
    tty: bool = False,
    runtime: str | None = None,
    timeout: float = DEFAULT_START_TIMEOUT_S,
    server: ForkServer | None = None,
) -> int:
    """Start a shim that creates the container; returns the container init's host pid.

    With `server` (the daemon's `ForkServer`), the shim is forked from it instead of started as a
    new interpreter; without a running server, it starts cold.

    The container is created, not started: that is the OCI `start`, which the caller runs.

    `state_dir` must exist and belongs to this container: the shim writes its socket, pid files,
    log and exit file there. `runtime` is an OCI runtime binary such as runc; None uses the
    in-tree executor. Raises `ShimStartError` (nothing left running, see shim.log for details) or
    `ShimStartTimeout` (the shim was killed; the OCI runtime may still know the container).
    """
    deadline = time.monotonic() + timeout
    args = shim_args(container_id, bundle=bundle, oci_root=oci_root, state_dir=state_dir,
                     log_path=log_path, stdin=stdin, stdin_once=stdin_once, tty=tty,
                     runtime=runtime)
    returncode: int | None = None
    stderr = b""
    line: bytes | None = None
    forked = False
    if server is not None:
        forked, line = _fork_from(server, args, deadline)
    if not forked:
        returncode, stderr, line = _start_cold(args, state_dir, container_id, timeout, deadline)

    if line is None:
        _kill_shim(state_dir, container_id)
        raise ShimStartTimeout(
            f"shim for {container_id} did not report within {timeout}s; it was killed"
        )
    if not line:
        detail = stderr.decode(errors="replace").strip() or _tail(state_dir / SHIM_LOG_NAME)
        raise ShimStartError(
            f"shim for {container_id} exited (status {returncode}) without reporting: {detail}"
        )
    try:
        message = decode_sync(line)
    except ProtocolError as exc:
        _kill_shim(state_dir, container_id)
        raise ShimStartError(f"shim for {container_id} sent a bad sync message: {exc}") from exc
    if isinstance(message, SyncError):
        raise TaskRefused(message.error)
    log.info(
        "shim %d created container %s, init pid %d",
        message.shim_pid,
        container_id,
        message.pid,
        extra={"container_id": container_id},
    )
    return message.pid


class ShimClient:
    """Requests to the running shim of one container, over `<state_dir>/shim.sock`.

    Each call opens its own connection, so a client can be shared between threads and survives
    the shim's socket being gone (the call raises `ShimUnavailable`).
    """

    def __init__(self, state_dir: Path, *, timeout: float = DEFAULT_REQUEST_TIMEOUT_S) -> None:
        self.state_dir = state_dir
        self.timeout = timeout

    def ping(self) -> int:
        """The container's init pid, if the shim is alive."""
        reply = self.request(PingRequest())
        if reply.pid is None:
            raise ShimError("shim answered ping without a pid")
        return reply.pid

    def reopen_log(self) -> None:
        """Close and reopen the container log (after the kubelet renamed it for rotation)."""
        self.request(ReopenLogRequest())

    def attach(self, request: AttachRequest) -> tuple[socket.socket, bytes]:
        """A connection turned into an attach stream (protocol.py, 4.), and the stream bytes
        that came with the reply. The socket is the caller's to close."""
        with self._connect() as sock:
            try:
                sock.sendall(encode_request(request))
                received = b""
                while b"\n" not in received:
                    if len(received) > MAX_LINE:
                        raise ShimError("shim's attach reply has no end")
                    data = sock.recv(4096)
                    if not data:
                        raise ShimUnavailable("shim closed the connection without replying")
                    received += data
            except TimeoutError:
                raise ShimError(f"shim did not answer attach in {self.timeout}s") from None
            except OSError as exc:
                raise ShimUnavailable(f"shim connection lost during attach: {exc}") from exc
            line, _, rest = received.partition(b"\n")
            reply = decode_reply(line)
            if isinstance(reply, ErrorReply):
                raise ShimRequestError(reply.error)
            return sock.dup(), rest

    def request(self, request: Request) -> OkReply:
        """Send one request and wait for its reply; every failure is a `ShimError`."""
        with self._connect() as sock:
            try:
                sock.sendall(encode_request(request))
                line = self._read_reply(sock)
            except TimeoutError:
                raise ShimError(f"shim did not answer {request.op} in {self.timeout}s") from None
            except OSError as exc:  # reset or broken pipe: the shim went away mid-request
                raise ShimUnavailable(f"shim connection lost during {request.op}: {exc}") from exc
        reply = decode_reply(line)
        if isinstance(reply, ErrorReply):
            raise ShimRequestError(reply.error)
        return reply

    @staticmethod
    def _read_reply(sock: socket.socket) -> bytes:
        lines = LineBuffer(MAX_LINE)
        while True:
            data = sock.recv(4096)
            if not data:
                raise ShimUnavailable("shim closed the connection without replying")
            replies = lines.feed(data)
            if replies:
                return replies[0]

    @contextlib.contextmanager
    def _connect(self) -> Iterator[socket.socket]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            with _socket_address(self.state_dir / SOCKET_NAME) as address:
                sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise ShimUnavailable(f"no shim listening in {self.state_dir}: {exc}") from exc
        except OSError as exc:
            sock.close()
            raise ShimError(f"cannot connect to the shim in {self.state_dir}: {exc}") from exc
        except BaseException:
            sock.close()
            raise
        with sock:
            yield sock


def read_exit_file(state_dir: Path) -> ExitStatus | None:
    """How the container ended, or None while the shim has not written the exit file.

    Raises `ProtocolError` (a `ShimError`) if the file is not a valid exit status.
    """
    try:
        data = (state_dir / EXIT_FILE_NAME).read_bytes()
    except FileNotFoundError:
        return None
    return decode_exit_status(data)


def read_shim_pid(state_dir: Path) -> int | None:
    """The shim's pid as it recorded it, or None if it never got that far."""
    try:
        return int((state_dir / SHIM_PID_FILE_NAME).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


# --- helpers ------------------------------------------------------------------------------------


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _fork_from(server: ForkServer, args: list[str], deadline: float) -> tuple[bool, bytes | None]:
    """(whether the server took the order, the sync line as _read_sync_line gives it)."""
    sync_r, sync_w = os.pipe()
    try:
        try:
            server.order(args, sync_w)
        except ForkServerGone:
            return False, None
        finally:
            # Only the shim may hold the write end, or EOF would never come if it dies.
            os.close(sync_w)
        return True, _read_sync_line(sync_r, deadline)
    finally:
        os.close(sync_r)


def _start_cold(args: list[str], state_dir: Path, container_id: str, timeout: float,
                deadline: float) -> tuple[int | None, bytes, bytes | None]:
    """A new shim process: (its started process's status, its stderr, the sync line)."""
    sync_r, sync_w = os.pipe()
    try:
        # site=False: one per container; the standard library is all it needs
        argv = module_argv("cri.shim", *args, "--sync-fd", str(sync_w), site=False)
        log.debug("starting shim: %s", argv, extra={"container_id": container_id})
        try:
            proc = subprocess.Popen(
                argv,
                pass_fds=(sync_w,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                cwd="/",
                env=helper_env(),
            )
        finally:
            # Only the shim may hold the write end, or EOF would never come if it dies.
            os.close(sync_w)
        # The started process only forks and exits (the detached child keeps running), so
        # waiting here is short and leaves no zombie in the daemon. stderr carries argument
        # errors; the detached child swaps its stderr for shim.log right after the fork.
        try:
            _, stderr = proc.communicate(timeout=_remaining(deadline))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            _kill_shim(state_dir, container_id)
            raise ShimStartTimeout(
                f"shim for {container_id} did not start within {timeout}s"
            ) from None
        return proc.returncode, stderr, _read_sync_line(sync_r, deadline)
    finally:
        os.close(sync_r)


def _read_sync_line(fd: int, deadline: float) -> bytes | None:
    """The sync line; b"" at EOF without one; None at the deadline."""
    buf = bytearray()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        remaining = _remaining(deadline)
        if remaining <= 0 or not poller.poll(remaining * 1000):
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return bytes(buf)  # a partial line is as good as none
        buf += chunk
        if b"\n" in buf:
            return bytes(buf[: buf.index(b"\n") + 1])
        if len(buf) > MAX_LINE:
            return bytes(buf)


def _kill_shim(state_dir: Path, container_id: str) -> None:
    """Kill a shim that did not report, with what it started in its process group (the OCI
    runtime's create and the not-yet-started init)."""
    pid = read_shim_pid(state_dir)
    if pid is None or not _is_shim_of(pid, container_id, state_dir):
        return
    log.warning("killing shim %d of %s", pid, container_id, extra={"container_id": container_id})
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # The shim is a session leader, so its process group id is its pid.
        os.killpg(pid, signal.SIGKILL)


def _is_shim_of(pid: int, container_id: str, state_dir: Path) -> bool:
    """Guards against a recycled pid: the process must be a shim for this container (a forked
    one has the fork server's command line, but works in the container's state dir)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return b"cri.shim" in args and (container_id.encode() in args or cwd == str(state_dir))


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no shim log)"
    return " | ".join(text.strip().splitlines()[-lines:])


@contextlib.contextmanager
def _socket_address(path: Path) -> Iterator[str]:
    """An address for `path` that fits in sun_path.

    A long path is reached through /proc/self/fd of its directory, opened with O_PATH, instead of
    changing directory (the daemon has threads, and the cwd is shared).
    """
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        yield str(path)
        return
    dir_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{dir_fd}/{path.name}"
    finally:
        os.close(dir_fd)
