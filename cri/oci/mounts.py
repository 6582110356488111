"""Spec mounts: option parsing and mounting each entry under the rootfs, in spec order.

Rules (runc's, kept so containers behave the same under both):
- bind/rbind: mount, then a MS_REMOUNT|MS_BIND pass for ro/nosuid/nodev/noexec (the kernel ignores
  those flags on the first bind), then one call per propagation option.
- sysfs with the host network namespace: rbind /sys instead (a new sysfs there shows the host's
  devices and fails in a user namespace anyway).
- cgroup (v1): a tmpfs with a read-only bind of the container's own cgroup directory of every
  hierarchy, as runc does without a cgroup namespace; (v2): cgroup2 with a new cgroup namespace,
  otherwise a bind of the container's cgroup directory.
- destinations are resolved inside the rootfs (paths.secure_join), never followed out of it.
"""

from __future__ import annotations

import os

from . import lazylog
from . import syscalls as sc
from .errors import InvalidSpec
from .paths import make_dirs, secure_join
from .records import record
from .spec import Mount
from .syscalls import Syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

log = lazylog.getLogger(__name__)

# option -> (set flags, clear flags)
_FLAGS: dict[str, tuple[int, int]] = {
    "ro": (sc.MS_RDONLY, 0),
    "rw": (0, sc.MS_RDONLY),
    "nosuid": (sc.MS_NOSUID, 0),
    "suid": (0, sc.MS_NOSUID),
    "nodev": (sc.MS_NODEV, 0),
    "dev": (0, sc.MS_NODEV),
    "noexec": (sc.MS_NOEXEC, 0),
    "exec": (0, sc.MS_NOEXEC),
    "sync": (sc.MS_SYNCHRONOUS, 0),
    "async": (0, sc.MS_SYNCHRONOUS),
    "dirsync": (sc.MS_DIRSYNC, 0),
    "remount": (sc.MS_REMOUNT, 0),
    "mand": (sc.MS_MANDLOCK, 0),
    "nomand": (0, sc.MS_MANDLOCK),
    "noatime": (sc.MS_NOATIME, 0),
    "atime": (0, sc.MS_NOATIME),
    "nodiratime": (sc.MS_NODIRATIME, 0),
    "diratime": (0, sc.MS_NODIRATIME),
    "relatime": (sc.MS_RELATIME, 0),
    "norelatime": (0, sc.MS_RELATIME),
    "strictatime": (sc.MS_STRICTATIME, 0),
    "nostrictatime": (0, sc.MS_STRICTATIME),
    "lazytime": (sc.MS_LAZYTIME, 0),
    "nolazytime": (0, sc.MS_LAZYTIME),
    "silent": (sc.MS_SILENT, 0),
    "loud": (0, sc.MS_SILENT),
    "nosymfollow": (sc.MS_NOSYMFOLLOW, 0),
    "bind": (sc.MS_BIND, 0),
    "rbind": (sc.MS_BIND | sc.MS_REC, 0),
}
PROPAGATION = {
    "private": sc.MS_PRIVATE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}
# Accepted and ignored: runc extensions and options meant for other runtimes.
_IGNORED = {"tmpcopyup", "defaults"}
_UNSUPPORTED = {"idmap", "ridmap"}
# Recursive attributes (runc 1.1's): applied with mount_setattr(AT_RECURSIVE) to the mount and
# every mount under it, which a bind remount cannot do. option -> (set, clear)
RECURSIVE = {
    "rro": (sc.MOUNT_ATTR_RDONLY, 0),
    "rrw": (0, sc.MOUNT_ATTR_RDONLY),
    "rnosuid": (sc.MOUNT_ATTR_NOSUID, 0),
    "rsuid": (0, sc.MOUNT_ATTR_NOSUID),
    "rnodev": (sc.MOUNT_ATTR_NODEV, 0),
    "rdev": (0, sc.MOUNT_ATTR_NODEV),
    "rnoexec": (sc.MOUNT_ATTR_NOEXEC, 0),
    "rexec": (0, sc.MOUNT_ATTR_NOEXEC),
}


@record
class Options:
    flags: int
    propagation: tuple[int, ...]
    data: str
    recursive_set: int = 0  # MOUNT_ATTR_* for mount_setattr(AT_RECURSIVE)
    recursive_clear: int = 0

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & sc.MS_BIND)

    @property
    def recursive(self) -> bool:
        return bool(self.flags & sc.MS_REC)


def parse_options(options: Iterable[str], *, where: str = "mount") -> Options:
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    rset = rclear = 0
    for opt in options:
        if opt in RECURSIVE:
            set_, clear = RECURSIVE[opt]
            rset, rclear = (rset | set_) & ~clear, (rclear | clear) & ~set_
        elif opt in _FLAGS:
            set_, clear = _FLAGS[opt]
            flags = (flags | set_) & ~clear
        elif opt in PROPAGATION:
            propagation.append(PROPAGATION[opt])
        elif opt in _IGNORED:
            continue
        elif opt in _UNSUPPORTED:
            raise InvalidSpec(f"{where}: mount option {opt!r} is not supported")
        else:
            data.append(opt)
    return Options(flags, tuple(propagation), ",".join(data), rset, rclear)


def statvfs_flags(path: str) -> int:
    """The MS_* flags a path's mount has now, to keep them on a bind remount (ST_* == MS_* bits)."""
    f = os.statvfs(path).f_flag
    keep = (
        sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME | sc.MS_NODIRATIME | sc.MS_RDONLY
    )
    flags = f & keep
    if f & 4096:  # ST_RELATIME
        flags |= sc.MS_RELATIME
    return flags


@record
class MountContext:
    """What mounting needs beyond the spec entry."""

    rootfs: str
    host_network: bool
    new_cgroupns: bool
    #: (host directory of the container's cgroup, name under /sys/fs/cgroup) per v1 hierarchy
    cgroup_v1: Sequence[tuple[str, str]]
    #: host directory of the container's v2 cgroup, when the host is cgroup v2 only
    cgroup_v2: str | None


def _ensure(dest: str, as_file: bool) -> None:
    if as_file:
        make_dirs(os.path.dirname(dest))
        if not os.path.lexists(dest):
            with open(dest, "a"):
                pass
    else:
        make_dirs(dest)


def _bind(sys: Syscalls, source: str, dest: str, opts: Options, rec: bool) -> None:
    _ensure(dest, as_file=not os.path.isdir(source))
    sys.mount(source, dest, "bind", sc.MS_BIND | (sc.MS_REC if rec else 0), None)
    extra = opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
    if extra:
        sys.mount(source, dest, None, extra | sc.MS_BIND | sc.MS_REMOUNT, None)


def _propagate(sys: Syscalls, dest: str, opts: Options) -> None:
    for flag in opts.propagation:
        sys.mount(None, dest, None, flag, None)


def mount_one(sys: Syscalls, m: Mount, ctx: MountContext) -> None:
    opts = parse_options(m.options, where=m.destination)
    dest = secure_join(ctx.rootfs, m.destination)
    if m.type == "cgroup" or m.type == "cgroup2":
        _mount_cgroup(sys, dest, opts, ctx)
    elif opts.is_bind:
        _bind(sys, m.source, dest, opts, opts.recursive)
    elif m.type == "sysfs" and ctx.host_network:
        _bind(sys, "/sys", dest, opts, rec=True)
    else:
        _ensure(dest, as_file=False)
        try:
            sys.mount(m.source, dest, m.type, opts.flags, opts.data or None)
        except OSError as e:
            # mqueue in the host IPC ns / sysfs in a foreign netns: bind instead, as runc does.
            if e.errno == 1 and m.type in ("mqueue", "sysfs"):
                log.info(
                    "mount %s on %s failed (%s); binding the host's instead",
                    m.type,
                    m.destination,
                    e,
                )
                _bind(sys, "/dev/mqueue" if m.type == "mqueue" else "/sys", dest, opts, rec=True)
            else:
                raise
    if opts.recursive_set or opts.recursive_clear:
        sys.mount_setattr_recursive(dest, opts.recursive_set, opts.recursive_clear)
    _propagate(sys, dest, opts)


def _mount_cgroup(sys: Syscalls, dest: str, opts: Options, ctx: MountContext) -> None:
    flags = opts.flags & ~(sc.MS_BIND | sc.MS_REC)
    if ctx.cgroup_v2 is not None:
        _ensure(dest, as_file=False)
        if ctx.new_cgroupns:
            sys.mount("cgroup2", dest, "cgroup2", flags, None)
        else:
            _bind(sys, ctx.cgroup_v2, dest, Options(flags, (), ""), rec=True)
        return
    _ensure(dest, as_file=False)
    sys.mount("tmpfs", dest, "tmpfs", flags & ~sc.MS_RDONLY, "mode=755")
    for host_dir, name in ctx.cgroup_v1:
        sub = os.path.join(dest, name)
        make_dirs(sub)
        sys.mount(host_dir, sub, "bind", sc.MS_BIND | sc.MS_REC, None)
        sys.mount(host_dir, sub, None, flags | sc.MS_BIND | sc.MS_REMOUNT, None)
        # Co-mounted controllers (cpu,cpuacct) get per-controller symlinks, as on the host.
        if "," in name:
            for part in name.split(","):
                link = os.path.join(dest, part)
                if not os.path.lexists(link):
                    os.symlink(name, link)


def mask_paths(sys: Syscalls, paths: Iterable[str], root: str = "/") -> None:
    """Hide files behind /dev/null and directories behind an empty read-only tmpfs (after pivot)."""
    for p in paths:
        target = secure_join(root, p)
        if not os.path.lexists(target):
            continue
        if os.path.isdir(target):
            sys.mount("tmpfs", target, "tmpfs", sc.MS_RDONLY, None)
        else:
            sys.mount(os.path.join(root, "dev/null"), target, None, sc.MS_BIND, None)


def readonly_paths(sys: Syscalls, paths: Iterable[str], root: str = "/") -> None:
    """Bind each path onto itself and remount it read-only, keeping its other flags."""
    for p in paths:
        target = secure_join(root, p)
        if not os.path.lexists(target):
            continue
        sys.mount(target, target, None, sc.MS_BIND | sc.MS_REC, None)
        flags = statvfs_flags(target)
        sys.mount(
            target,
            target,
            None,
            flags | sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC,
            None,
        )
