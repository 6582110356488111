"""/dev contents: the default device nodes, the spec's devices, and the standard symlinks.

Runs before pivot_root with the rootfs prefix, and only when /dev is not a bind of the host's
(runc's rule). mknod needs CAP_MKNOD in the init user namespace; on EPERM (in a user namespace) the
host node is bind-mounted instead, as runc does.
"""

from __future__ import annotations

import os
import stat

from . import lazylog
from . import syscalls as sc
from .paths import make_dirs, secure_join
from .spec import Device
from .syscalls import Syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

log = lazylog.getLogger(__name__)

#: in runc's order (its AllowedDevices), visible in the mount table where they are bind mounts
DEFAULT_DEVICES = (
    Device("/dev/null", "c", 1, 3, 0o666, 0, 0),
    Device("/dev/random", "c", 1, 8, 0o666, 0, 0),
    Device("/dev/full", "c", 1, 7, 0o666, 0, 0),
    Device("/dev/tty", "c", 5, 0, 0o666, 0, 0),
    Device("/dev/zero", "c", 1, 5, 0o666, 0, 0),
    Device("/dev/urandom", "c", 1, 9, 0o666, 0, 0),
)

#: device cgroup rules runc always appends after the spec's (so the defaults above stay usable).
DEFAULT_ALLOW_RULES = (
    {"allow": True, "type": "c", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "b", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "minor": None, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
)

_KIND = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def create_devices(
    sys: Syscalls, rootfs: str, devices: Iterable[Device], *, with_defaults: bool = True
) -> None:
    old_umask = os.umask(0)  # the modes are the spec's, not filtered by our umask
    try:
        wanted = list(DEFAULT_DEVICES if with_defaults else ()) + [d for d in devices]
        for dev in wanted:
            _create(sys, rootfs, dev)
    finally:
        os.umask(old_umask)


def _create(sys: Syscalls, rootfs: str, dev: Device) -> None:
    dest = secure_join(rootfs, dev.path)
    make_dirs(os.path.dirname(dest))
    if os.path.lexists(dest):
        os.unlink(dest)
    mode = _KIND[dev.type] | (dev.file_mode & 0o7777)
    try:
        sys.mknod(dest, mode, os.makedev(dev.major, dev.minor))
        if os.path.lexists(dest):  # the recording fake creates nothing
            os.chown(dest, dev.uid, dev.gid)
    except PermissionError:
        log.info("mknod %s not permitted; bind-mounting the host's node", dev.path)
        with open(dest, "a"):
            pass
        sys.mount(dev.path, dest, "bind", sc.MS_BIND, None)


def create_symlinks(rootfs: str) -> None:
    """/dev/fd, stdin/stdout/stderr, ptmx -> pts/ptmx, /dev/core if the host has /proc/kcore."""
    links = [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ]
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "core"))
    dev = secure_join(rootfs, "/dev")
    for target, name in links:
        path = os.path.join(dev, name)
        if not os.path.lexists(path):
            os.symlink(target, path)
    ptmx = os.path.join(dev, "ptmx")
    if os.path.lexists(ptmx):
        os.unlink(ptmx)
    os.symlink("pts/ptmx", ptmx)
