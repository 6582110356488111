"""Namespaces: new ones by unshare, existing ones joined by path with setns.

pid and time namespaces apply to *children* only, so the creator switches its own
pid_for_children/time_for_children around the fork (`for_children`) and switches back at once: the
init is then a direct child of the caller, with no double fork. The caller must be single-threaded
while that context is open (another thread's fork would land in the container's pid namespace).
Every other namespace is entered by the init itself, after it has joined the cgroup.

With a user namespace the order changes (userns.py): every namespace the init creates must be
owned by it, so the init makes the user namespace first and a new pid namespace after it, with a
fork of its own; `for_children` then leaves a new pid namespace alone.
"""

from __future__ import annotations

import os

from . import lazylog
from . import syscalls as sc
from .spec import Namespace
from .syscalls import Syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

log = lazylog.getLogger(__name__)

#: spec type -> (clone flag, /proc/PID/ns name)
TYPES: dict[str, tuple[int, str]] = {
    "user": (sc.CLONE_NEWUSER, "user"),
    "cgroup": (sc.CLONE_NEWCGROUP, "cgroup"),
    "ipc": (sc.CLONE_NEWIPC, "ipc"),
    "uts": (sc.CLONE_NEWUTS, "uts"),
    "network": (sc.CLONE_NEWNET, "net"),
    "pid": (sc.CLONE_NEWPID, "pid"),
    "time": (sc.CLONE_NEWTIME, "time"),
    "mount": (sc.CLONE_NEWNS, "mnt"),
}
#: namespaces that only a fork enters
CHILD_ONLY = ("pid", "time")
#: joining order: user first (it grants the rights for the rest), mount last (it moves our root)
ORDER = ("user", "cgroup", "ipc", "uts", "network", "pid", "time", "mount")


def _sorted(namespaces: Iterable[Namespace]) -> list[Namespace]:
    return sorted(namespaces, key=lambda ns: ORDER.index(ns.type))


def open_paths(namespaces: Iterable[Namespace]) -> list[tuple[str, int]]:
    """Open every namespace to join (not pid/time) before anything moves our root."""
    fds = []
    for ns in _sorted(namespaces):
        if ns.path is not None and ns.type not in CHILD_ONLY:
            fds.append((ns.type, os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)))
    return fds


def join(sys: Syscalls, fds: Iterable[tuple[str, int]]) -> None:
    """User first, except for namespaces the joined user namespace does not own: those are
    joined before it, while we still hold the rights of their owner. (A pod's network namespace
    pinned by the runtime belongs to the host's user namespace while its containers join the
    pod's own: setns to it from inside fails with EPERM.)"""
    fds = list(fds)
    user = next((fd for ns_type, fd in fds if ns_type == "user"), None)
    if user is not None:
        target = _identity(user)
        early = [(t, fd) for t, fd in fds if t != "user" and _owner_identity(fd) != target]
        fds = early + [(t, fd) for t, fd in fds if (t, fd) not in early]
    for ns_type, fd in fds:
        sys.setns(fd, TYPES[ns_type][0])
        os.close(fd)


_NS_GET_USERNS = 0xB701


def _identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _owner_identity(fd: int) -> tuple[int, int] | None:
    """The user namespace owning namespace `fd` (ioctl NS_GET_USERNS); None where the kernel
    will not say (the owner is above ours)."""
    import fcntl

    try:
        owner = fcntl.ioctl(fd, _NS_GET_USERNS)
    except OSError:
        return None
    try:
        return _identity(owner)
    finally:
        os.close(owner)


def unshare_flags(namespaces: Iterable[Namespace]) -> int:
    """The new namespaces the init unshares in one go: not pid/time (`for_children`), not user
    (userns.py creates it first)."""
    flags = 0
    for ns in namespaces:
        if ns.path is None and ns.type not in CHILD_ONLY and ns.type != "user":
            flags |= TYPES[ns.type][0]
    return flags


def _write_time_offsets(offsets: Mapping[str, Any]) -> None:
    lines = []
    for clock in ("monotonic", "boottime"):
        off = offsets.get(clock)
        if off:
            lines.append(f"{clock} {int(off.get('secs', 0))} {int(off.get('nanosecs', 0))}\n")
    if lines:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write("".join(lines))


class _ForChildren:
    """for_children's context manager (a class: contextlib costs 3 ms to import)."""

    def __init__(
        self, sys: Syscalls, namespaces: list[Namespace], time_offsets: Mapping[str, Any] | None
    ) -> None:
        self.sys = sys
        self.namespaces = namespaces
        self.time_offsets = time_offsets
        self.restore: list[tuple[int, int]] = []

    def __enter__(self) -> None:
        sys, restore = self.sys, self.restore
        # a new pid namespace must belong to the container's user namespace: the init makes it
        pid_in_init = any(ns.type == "user" for ns in self.namespaces)
        try:
            for ns in _sorted(self.namespaces):
                if ns.type not in CHILD_ONLY or (
                    ns.type == "pid" and ns.path is None and pid_in_init
                ):
                    continue
                flag, name = TYPES[ns.type]
                restore.append((os.open(f"/proc/self/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), flag))
                if ns.path is None:
                    sys.unshare(flag)
                    if ns.type == "time" and self.time_offsets:
                        _write_time_offsets(self.time_offsets)
                else:
                    fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        sys.setns(fd, flag)
                    finally:
                        os.close(fd)
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc_info: object) -> None:
        restore, self.restore = self.restore, []
        for fd, flag in reversed(restore):
            try:
                self.sys.setns(fd, flag)
            finally:
                os.close(fd)


def for_children(
    sys: Syscalls, namespaces: Iterable[Namespace], time_offsets: Mapping[str, Any] | None = None
) -> _ForChildren:
    """Point our pid/time_for_children at the container's for the fork, then restore (a
    context manager)."""
    return _ForChildren(sys, list(namespaces), time_offsets)


def same_as_ours(pid: int, name: str) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/{name}").st_ino == os.stat(f"/proc/self/ns/{name}").st_ino
    except FileNotFoundError:
        return True


def of_process(pid: int) -> list[Namespace]:
    """The namespaces of `pid` that differ from ours, as join-by-path entries (for exec)."""
    result = []
    for ns_type in ORDER:
        name = TYPES[ns_type][1]
        if not same_as_ours(pid, name):
            result.append(Namespace(ns_type, f"/proc/{pid}/ns/{name}"))
    return result


def paths_for(pid: int, namespaces: Iterable[Namespace]) -> dict[str, str]:
    """Namespace paths recorded in state.json: the joined path, or the init's /proc entry."""
    return {ns.type: ns.path or f"/proc/{pid}/ns/{TYPES[ns.type][1]}" for ns in namespaces}
