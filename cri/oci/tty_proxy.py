"""`exec --tty` in the foreground without --console-socket (runc's interactive `exec -t`).

The CLI receives the pty master itself on a private console socket and copies between its own
stdio and the master until the process exits: its terminal (when stdin is one) goes raw for the
duration and its size is copied to the pty, at start and on SIGWINCH. The exit code is the
process's, as with a non-tty exec.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .console import get_size, receive_master, set_size
from .errors import OciError
from .exec import exec_process, exit_code

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .statefile import StrPath

ACCEPT_TIMEOUT = 30.0


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
    with tempfile.TemporaryDirectory(prefix="cri-oci-tty-") as tmp:
        path = Path(tmp) / "console.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(path))
            listener.listen(1)
            pid = exec_process(
                root,
                container_id,
                proc,
                stdin=None,
                stdout=None,
                stderr=None,
                detach=True,
                pid_file=pid_file,
                console_socket=path,
                preserve_fds=preserve_fds,
            )
            listener.settimeout(ACCEPT_TIMEOUT)
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                raise OciError("the exec'd process never sent its terminal") from None
            with conn:
                master, _ = receive_master(conn)
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
            with contextlib.suppress(OSError):
                set_size(master, get_size(stdin))

        signal.signal(signal.SIGWINCH, resize)
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
            signal.signal(signal.SIGWINCH, signal.SIG_DFL)
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
