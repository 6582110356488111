"""Preparing the rootfs mount and switching to it (runc's sequence).

1. Set "/" to linux.rootfsPropagation (default rslave; unbindable becomes private until step 5)
   so our mounts don't leak to the host while host mounts still reach the container.
2. Make the rootfs's parent mount private if it is shared: pivot_root refuses shared parents.
3. Bind the rootfs onto itself so it is a mount point (pivot_root needs one).
4. After the spec mounts: pivot_root(".", ".") stacks the old root on top of the new one;
   mark it rslave so the detach doesn't propagate, then umount2(".", MNT_DETACH). No put_old
   directory is needed inside the image.
5. A rootfsPropagation other than (r)private is set again on the new "/"
   (`propagates_after_pivot`).

A container without a mount namespace of its own (none in linux.namespaces) shares the caller's:
steps 1 and 2 are skipped (they would change the host's mounts), the rootfs is still bound onto
itself (so a read-only rootfs is a remount of that bind, not of the host's "/"), the spec's mounts
land in the shared namespace (as under runc; `delete` detaches them), and chroot replaces
pivot_root.
"""

from __future__ import annotations

import os

from . import syscalls as sc
from .mounts import PROPAGATION, statvfs_flags
from .syscalls import Syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable



def set_root_propagation(sys: Syscalls, propagation: str | None) -> None:
    flag = PROPAGATION[propagation] if propagation else sc.MS_SLAVE | sc.MS_REC
    sys.mount(None, "/", None, flag, None)


def set_propagation_before_pivot(sys: Syscalls, propagation: str | None) -> None:
    """Step 1: linux.rootfsPropagation on the old "/", except that (r)unbindable is (r)private
    here: the rootfs is still to be bind-mounted from under it, and binding from an unbindable
    mount is EINVAL (runc 1.1.5 fails so). Unbindable is private besides, so nothing leaks
    either way; the new "/" gets the real value after pivot_root."""
    if propagation in ("unbindable", "runbindable"):
        propagation = "private" if propagation == "unbindable" else "rprivate"
    set_root_propagation(sys, propagation)


def propagates_after_pivot(propagation: str | None) -> bool:
    """Whether to set a non-private linux.rootfsPropagation again on the new "/" after pivot_root.

    The runtime-spec gives the container's rootfs that propagation, but step 1 set it on what was
    "/" then (our copy of the host's root). NOTE: runc 1.1.5 and crun 1.8.1 stop there and leave
    the container's "/" private; we follow the spec.
    """
    return propagation is not None and not PROPAGATION[propagation] & sc.MS_PRIVATE


def _parent_mount(path: str, mountinfo: str) -> tuple[str, bool]:
    """(mount point holding `path`, whether it is shared) from /proc/self/mountinfo text."""
    best, shared = "/", False
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 7:
            continue
        point = fields[4].replace("\\040", " ")
        optional = fields[6 : fields.index("-")] if "-" in fields else []
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, shared = point, any(o.startswith("shared:") for o in optional)
    return best, shared


def _mounts_at(path: str, mountinfo: str) -> dict[int, int]:
    """mount id -> parent id of the mounts at exactly `path`, from /proc/self/mountinfo text."""
    here = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4].replace("\\040", " ") == path:
            here[int(fields[0])] = int(fields[1])
    return here


def top_mount_id(path: str, mountinfo: str) -> int | None:
    """The id of the topmost mount at `path` (the one no other mount there stacks on)."""
    here = _mounts_at(path, mountinfo)
    tops = [mount_id for mount_id in here if mount_id not in set(here.values())]
    return tops[-1] if tops else None


def read_mountinfo() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


def detach_shared_rootfs(
    sys: Syscalls, rootfs: str, mount_id: int, mountinfo: Callable[[], str] = read_mountinfo
) -> None:
    """`delete` of a container that shared our mount namespace: detach the rootfs bind its init
    made, and with it the spec's mounts under it, if it is still there (runc leaves them all
    behind). Whatever was stacked on it goes first; a mount that is not ours is never touched."""
    for _ in range(64):
        if mount_id not in _mounts_at(rootfs, mountinfo()):
            return
        sys.umount2(rootfs, sc.MNT_DETACH)


def make_parent_private(sys: Syscalls, rootfs: str) -> None:
    with open("/proc/self/mountinfo") as f:
        point, shared = _parent_mount(rootfs, f.read())
    if shared:
        sys.mount(None, point, None, sc.MS_PRIVATE, None)


def bind_rootfs(sys: Syscalls, rootfs: str) -> None:
    sys.mount(rootfs, rootfs, "bind", sc.MS_BIND | sc.MS_REC, None)


def pivot(sys: Syscalls, rootfs: str) -> None:
    # NOTE: back into the old root before making it a slave, as runc does: after
    # pivot_root(".", ".") a mount(2) on "." names the mount under the cwd, which is the new
    # root, and MS_SLAVE|MS_REC there turned every rshared bind of the container into a slave
    # of the host (mounts made inside never reached the host). umount2 finds the old root on
    # top either way.
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.chdir(rootfs)
        sys.pivot_root(".", ".")
        os.fchdir(old_root)
    finally:
        os.close(old_root)
    sys.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC, None)
    sys.umount2(".", sc.MNT_DETACH)
    os.chdir("/")


def chroot_into(sys: Syscalls, rootfs: str) -> None:
    """Without a mount namespace of its own the container shares the caller's mounts, and
    pivot_root would move the root of everything that shares them: chroot instead (runc's)."""
    os.chdir(rootfs)
    sys.chroot(".")
    os.chdir("/")


def readonly_root(sys: Syscalls) -> None:
    flags = statvfs_flags("/")
    sys.mount(None, "/", None, flags | sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY, None)


def write_sysctls(sysctl: dict[str, str] | object, proc_sys: str = "/proc/sys") -> None:
    """Write linux.sysctl after pivot, so /proc/sys is the container's (namespaced keys only)."""
    assert isinstance(sysctl, dict)
    for key, value in sysctl.items():
        with open(os.path.join(proc_sys, key.replace(".", "/")), "w") as f:
            f.write(value)
