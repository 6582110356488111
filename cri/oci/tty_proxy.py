"""`exec --tty` in the foreground without --console-socket (runc's interactive `exec -t`).

The CLI receives the pty master itself on a private console socket and copies between its own
stdio and the master until the process exits: its terminal (when stdin is one) goes raw for the
duration and its size is copied to the pty, at start and on SIGWINCH. The exit code is the
process's, as with a non-tty exec.
"""

from __future__ import annotations

import os
import select

from .console import get_size, receive_master, set_size
from .errors import OciError
from .exec import exec_process, exit_code

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    import socket as _socket
    from collections.abc import Mapping, Sequence
    from typing import Any

    from .statefile import StrPath
else:
    # NOTE: no socket, signal, tempfile, pathlib or contextlib: as light as the rest of exec
    import _signal
    import _socket

ACCEPT_TIMEOUT = 30.0


def _private_dir() -> str:
    """A new 0700 directory, as tempfile.mkdtemp(prefix="cri-oci-tty-") (tempfile: 3 ms)."""
    base = os.environ.get("TMPDIR") or "/tmp"
    while True:
        path = os.path.join(base, f"cri-oci-tty-{os.urandom(6).hex()}")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path


def exec_with_terminal(
    root: StrPath,
    container_id: str,
    process: Mapping[str, Any],
    *,
    pid_file: StrPath | None = None,
    preserve_fds: Sequence[int] = (),
) -> int:
    proc = dict(process)
    if os.isatty(0) and not proc.get("consoleSize"):
        size = get_size(0)
        proc["consoleSize"] = {"height": size.height, "width": size.width}
    tmp = _private_dir()
    path = os.path.join(tmp, "console.sock")
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        listener.bind(path)
        listener.listen(1)
        pid = exec_process(
            root,
            container_id,
            proc,
            stdin=None,
            stdout=None,
            stderr=None,
            detach=True,
            die_with_caller=True,  # we proxy its terminal until it exits
            pid_file=pid_file,
            console_socket=path,
            preserve_fds=preserve_fds,
        )
        listener.settimeout(ACCEPT_TIMEOUT)
        try:
            fd, _ = listener._accept()  # type: ignore[attr-defined]  # what accept() wraps
        except TimeoutError:
            raise OciError("the exec'd process never sent its terminal") from None
        conn = _socket.socket(fileno=fd)
        try:
            master, _ = receive_master(conn)
        finally:
            conn.close()
    finally:
        listener.close()
        for name in (path, tmp):
            try:  # noqa: SIM105 - contextlib costs 3 ms to import
                (os.rmdir if name == tmp else os.unlink)(name)
            except OSError:
                pass
    try:
        return proxy(master, pid)
    finally:
        os.close(master)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def proxy(master: int, pid: int, stdin: int = 0, stdout: int = 1) -> int:
    """Copy stdin -> master and master -> stdout until `pid` (our child) exits; its exit code."""
    import termios
    import tty

    saved = None
    if os.isatty(stdin):
        saved = termios.tcgetattr(stdin)
        # TCSANOW: the default TCSAFLUSH would drop what was typed before we got here
        tty.setraw(stdin, termios.TCSANOW)

        def resize(_sig: int, _frame: object) -> None:
            try:  # noqa: SIM105
                set_size(master, get_size(stdin))
            except OSError:
                pass

        _signal.signal(_signal.SIGWINCH, resize)
        # NOTE: a resize between the size read for consoleSize and the handler above was lost
        # (SIGWINCH's default is to ignore it): copy the size once more, now that one is caught.
        resize(0, None)
    pidfd = os.pidfd_open(pid)
    try:
        inputs = [master, stdin, pidfd]
        while True:
            try:
                ready, _, _ = select.select(inputs, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd is closed
                    data = b""
                if not data:
                    break
                _write_all(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if data:
                    _write_all(master, data)
                else:
                    inputs.remove(stdin)
            if pidfd in ready:
                _drain(master, stdout)
                break
    finally:
        os.close(pidfd)
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
            _signal.signal(_signal.SIGWINCH, _signal.SIG_DFL)
    _, status = os.waitpid(pid, 0)
    return exit_code(status)


def _drain(master: int, stdout: int) -> None:
    """What the process wrote just before it exited."""
    while True:
        ready, _, _ = select.select([master], [], [], 0)
        if not ready:
            return
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        _write_all(stdout, data)
