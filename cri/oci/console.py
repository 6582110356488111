"""Container terminals (process.terminal): runc's --console-socket contract.

- The caller of create/exec connects to the console socket (a listening AF_UNIX stream socket
  that containerd, CRI-O or a test owns) and hands the connected fd to the container process.
- The container process, inside the container's mount namespace (after pivot_root for the init),
  opens /dev/ptmx: /dev/ptmx is a symlink to pts/ptmx, so the pty comes from the container's own
  devpts instance and shows up inside as /dev/pts/N. It sets process.consoleSize on it, for the
  init binds the slave over /dev/console, sends the master with SCM_RIGHTS in one message whose
  payload is the master's name ("/dev/ptmx", as runc sends `pty.Name()`), and makes the slave its
  stdio and controlling terminal (the process is a session leader: see `init.py` "setsid").
- The receiver owns the master from then on; the container process keeps only the slave.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

from . import syscalls as sc
from .errors import OciError
from .records import record
from .spec import ConsoleSize
from .syscalls import Syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket as _socket

    from .statefile import StrPath
else:
    import _socket  # what `socket` wraps, without its enums and selectors (3 to 5 ms)

# NOTE: the container process's send_master runs after pivot_root (the init) or setns (exec),
# where the host's standard library is out of reach: `_socket` and `struct` are loaded with this
# module, which the creator imports before the fork.

# ioctls (asm-generic/ioctls.h, the same on x86_64 and aarch64)
TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
TIOCGWINSZ = 0x5413
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441

#: the payload runc sends with the master fd (the master's own name)
MASTER_NAME = "/dev/ptmx"

NO_SOCKET = "cannot allocate tty if runc will detach without setting console socket"
NO_TTY = "cannot use console socket if runc will not detach or allocate tty"


def check_request(terminal: bool, console_socket: StrPath | None) -> None:
    """runc's rules for a detached process (create, exec --detach, and exec through the shim)."""
    if terminal and console_socket is None:
        raise OciError(NO_SOCKET)
    if not terminal and console_socket is not None:
        raise OciError(NO_TTY)


def connect(path: StrPath) -> int:
    """Connect to the console socket (in the caller, before fork); an O_CLOEXEC fd."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(os.fspath(path))
    except OSError as e:
        sock.close()
        raise OciError(f"cannot connect to console socket {path}: {e.strerror or e}") from None
    return sock.detach()


@record
class Pty:
    master: int
    slave: int
    slave_path: str


def open_pty(dev: str = "/dev") -> Pty:
    """A new pty from the devpts instance behind `dev`/ptmx (O_CLOEXEC, not our ctty yet)."""
    master = os.open(os.path.join(dev, "ptmx"), os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
        (number,) = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))
        slave_path = os.path.join(dev, "pts", str(number))
        try:
            # NOTE: TIOCGPTPEER (Linux 4.13) opens the slave through the master, so no path lookup
            # can be redirected to another devpts instance; the path is the fallback.
            slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOTTY):
                raise
            slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    return Pty(master, slave, slave_path)


def set_size(fd: int, size: ConsoleSize) -> None:
    fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))


def get_size(fd: int) -> ConsoleSize:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, TIOCGWINSZ, b"\0" * 8))
    return ConsoleSize(rows, cols)


def mount_console(sys: Syscalls, slave_path: str, dev: str = "/dev") -> None:
    """Bind the slave over /dev/console (an empty 0666 file first), as runc's mountConsole."""
    target = os.path.join(dev, "console")
    old = os.umask(0)
    try:
        fd = os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666)
        try:
            os.fchmod(fd, 0o666)
        finally:
            os.close(fd)
    finally:
        os.umask(old)
    sys.mount(slave_path, target, None, sc.MS_BIND, None)


def send_master(sock_fd: int, master: int) -> None:
    """One message, payload MASTER_NAME, the master fd as SCM_RIGHTS; closes sock_fd."""
    sock = _socket.socket(fileno=sock_fd)
    try:
        # socket.send_fds(sock, [MASTER_NAME.encode()], [master])
        rights = (_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", master))
        sock.sendmsg([MASTER_NAME.encode()], [rights])
    finally:
        sock.close()


def receive_master(sock: _socket.socket) -> tuple[int, str]:
    """The receiving side (tests, and the shim when it owns the socket): (master fd, payload)."""
    # socket.recv_fds(sock, 4096, 1): room for one fd (the kernel drops any more)
    msg, ancdata, _, _ = sock.recvmsg(4096, _socket.CMSG_LEN(4))
    fds = [
        struct.unpack("i", data[:4])[0]
        for level, kind, data in ancdata
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(data) >= 4
    ]
    if not fds:
        raise OciError("console socket: no file descriptor in the message")
    return fds[0], msg.decode(errors="replace")


def setup(
    sys: Syscalls,
    sock_fd: int,
    size: ConsoleSize | None,
    *,
    mount: bool,
    dev: str = "/dev",
) -> None:
    """Allocate the pty, hand the master over, make the slave fds 0-2 and the ctty.

    The caller must already be a session leader without a controlling terminal.
    """
    pty = open_pty(dev)
    try:
        try:
            if size is not None and size.height and size.width:
                set_size(pty.master, size)
            if mount:
                mount_console(sys, pty.slave_path, dev)
            send_master(sock_fd, pty.master)
        finally:
            os.close(pty.master)
        for target in (0, 1, 2):
            os.dup2(pty.slave, target, inheritable=True)
    finally:
        os.close(pty.slave)
    fcntl.ioctl(0, TIOCSCTTY, 0)
