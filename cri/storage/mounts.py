"""mount(2) and umount2(2) for the daemon, which must not fork to run mount(8).

A thin daemon-side face over the executor's one libc seam (`cri.oci.syscalls`), with the
idempotent unmount that teardown paths want.
"""

from __future__ import annotations

import errno
from pathlib import Path

from cri.oci.syscalls import RealSyscalls

MNT_DETACH = 2

_sys = RealSyscalls()


def mount(source: str, target: Path, fstype: str, flags: int = 0, data: str = "") -> None:
    _sys.mount(source, str(target), fstype, flags, data or None)


def unmount(target: Path, flags: int = MNT_DETACH) -> None:
    """Unmount if mounted; a path that is not a mount point, or is gone, is not an error."""
    try:
        _sys.umount2(str(target), flags)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise
