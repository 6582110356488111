"""The console contract without a container: a host pty, a socketpair, the fake syscalls."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
from pathlib import Path

import pytest

from cri.oci import console
from cri.oci import syscalls as sc
from cri.oci.errors import OciError
from cri.oci.spec import ConsoleSize
from cri.oci.syscalls import RecordingSyscalls

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/ptmx"), reason="needs /dev/ptmx")


def _dev(tmp_path: Path) -> Path:
    """A /dev look-alike whose ptmx and pts are the host's (the container's devpts stand-in)."""
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "ptmx").symlink_to("/dev/ptmx")
    (dev / "pts").symlink_to("/dev/pts")
    return dev


def test_request_rules() -> None:
    console.check_request(False, None)
    console.check_request(True, Path("/run/sock"))
    with pytest.raises(OciError, match="without setting console socket"):
        console.check_request(True, None)
    with pytest.raises(OciError, match="will not detach or allocate tty"):
        console.check_request(False, Path("/run/sock"))


def test_open_pty_and_size(tmp_path: Path) -> None:
    pty = console.open_pty(str(_dev(tmp_path)))
    try:
        assert os.ttyname(pty.slave).startswith("/dev/pts/")
        assert pty.slave_path == str(tmp_path / "dev" / "pts" / os.ttyname(pty.slave)[9:])
        console.set_size(pty.master, ConsoleSize(33, 101))
        assert console.get_size(pty.slave) == ConsoleSize(33, 101)
        os.write(pty.slave, b"hi\n")
        assert os.read(pty.master, 100) == b"hi\r\n"
        # both ends are close-on-exec: only the container process's fds 0-2 survive its exec
        for fd in (pty.master, pty.slave):
            assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    finally:
        os.close(pty.master)
        os.close(pty.slave)


def test_connect_refused_is_an_oci_error(tmp_path: Path) -> None:
    with pytest.raises(OciError, match="console socket"):
        console.connect(tmp_path / "nobody-listens")


def test_setup_sends_master_and_makes_the_slave_stdio_and_ctty(tmp_path: Path) -> None:
    """In a child (it changes its session and fds 0-2), as the init's "console" step does."""
    dev = _dev(tmp_path)
    ours, theirs = socket.socketpair()
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through report_w and its exit code
        code = 1
        try:
            ours.close()
            os.setsid()
            fake = RecordingSyscalls()
            console.setup(fake, theirs.detach(), ConsoleSize(24, 80), mount=True, dev=str(dev))
            mounts = fake.mounts()
            checks = [
                os.ttyname(0) == os.ttyname(1) == os.ttyname(2),
                os.tcgetpgrp(0) == os.getpgrp(),  # the controlling terminal's foreground group
                console.get_size(0) == ConsoleSize(24, 80),
                len(mounts) == 1,
                mounts[0][1:] == (str(dev / "console"), None, sc.MS_BIND, None),
                (dev / "console").stat().st_mode & 0o777 == 0o666,
            ]
            os.write(report_w, repr(checks).encode())
            os.write(1, b"from the child\n")
            code = 0
        finally:
            os._exit(code)
    theirs.close()
    os.close(report_w)
    try:
        master, payload = console.receive_master(ours)
        try:
            assert payload == "/dev/ptmx"
            _, status = os.waitpid(pid, 0)
            assert os.WEXITSTATUS(status) == 0
            with os.fdopen(report_r) as report:
                assert report.read() == repr([True] * 6)
            assert os.read(master, 100) == b"from the child\r\n"
            # TIOCGPTN on the received master names the same pty the child had
            (number,) = struct.unpack("I", fcntl.ioctl(master, console.TIOCGPTN, b"\0" * 4))
            assert number >= 0
        finally:
            os.close(master)
    finally:
        ours.close()
