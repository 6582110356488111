"""mount(2) and umount2(2) for the daemon, which must not fork to run mount(8)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

MS_BIND = 4096
MS_REC = 16384
MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def mount(source: str, target: Path, fstype: str, flags: int = 0, data: str = "") -> None:
    raw = data.encode() if data else None
    if _libc.mount(source.encode(), os.fsencode(target), fstype.encode(), flags, raw) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype} on {target}: {os.strerror(err)}")


def unmount(target: Path, flags: int = MNT_DETACH) -> None:
    """Unmount if mounted; a path that is not a mount point is not an error."""
    if _libc.umount2(os.fsencode(target), flags) != 0:
        err = ctypes.get_errno()
        if err in (22, 2):  # EINVAL: not a mount point; ENOENT: already gone
            return
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def is_mount_point(path: Path) -> bool:
    target = os.fsencode(os.path.realpath(path))
    with open("/proc/self/mountinfo", "rb") as f:
        return any(line.split(b" ")[4] == target for line in f)
