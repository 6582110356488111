"""The one seam for privileged system calls.

Every mount, namespace, capability or identity change the executor makes goes through a `Syscalls`
object. `RealSyscalls` calls libc through _ctypes (Python 3.11 has no os.unshare/os.setns);
`RecordingSyscalls` records the calls so mount plans can be unit-tested without root.
"""

from __future__ import annotations

import _ctypes
import os

from .records import field, mutable_record, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object  # typing costs 10 ms to import: the Protocol is for the type checker

# mount(2) flags (linux/mount.h)
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000
PROPAGATION_FLAGS = MS_UNBINDABLE | MS_PRIVATE | MS_SLAVE | MS_SHARED

MNT_DETACH = 0x2

# clone/unshare flags
CLONE_NEWTIME = 0x80
CLONE_NEWNS = 0x20000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# prctl options
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# ioprio_set(2)
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_SHIFT = 13

#: syscall numbers glibc 2.36 has no wrapper for, per machine
_NR = {
    "x86_64": {"pivot_root": 155, "ioprio_set": 251, "sched_setattr": 314,
               "mount_setattr": 442, "open_tree": 428, "move_mount": 429},
    "aarch64": {"pivot_root": 41, "ioprio_set": 30, "sched_setattr": 274,
                "mount_setattr": 442, "open_tree": 428, "move_mount": 429},
}

# mount_setattr(2), Linux 5.12
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR_IDMAP = 0x100000
OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = 0o2000000
AT_EMPTY_PATH = 0x1000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
# NOTE: read once at import: after personality(PER_LINUX32) uname says i686 while we still make
# 64-bit system calls.
_MACHINE = os.uname().machine


@record
class CapSets:
    effective: int
    permitted: int
    inheritable: int


@record
class SchedAttr:
    """struct sched_attr (SCHED_ATTR_SIZE_VER0, 48 bytes: no utilization clamps)."""

    policy: int
    flags: int = 0
    nice: int = 0
    priority: int = 0
    runtime: int = 0
    deadline: int = 0
    period: int = 0

    def pack(self) -> bytes:
        import struct

        return struct.pack(
            "=IIQiIQQQ",
            48,
            self.policy,
            self.flags,
            self.nice,
            self.priority,
            self.runtime,
            self.deadline,
            self.period,
        )


class Syscalls(Protocol):
    """Privileged calls; each raises OSError with errno on failure."""

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None: ...
    def umount2(self, target: str, flags: int) -> None: ...
    def mount_setattr_recursive(self, target: str, attr_set: int, attr_clr: int) -> None: ...
    def pivot_root(self, new_root: str, put_old: str) -> None: ...
    def chroot(self, path: str) -> None: ...
    def setresuid(self, uid: int) -> None: ...
    def setresgid(self, gid: int) -> None: ...
    def child_subreaper(self) -> bool: ...
    def unshare(self, flags: int) -> None: ...
    def setns(self, fd: int, nstype: int) -> None: ...
    def sethostname(self, name: str) -> None: ...
    def setdomainname(self, name: str) -> None: ...
    def prctl(
        self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0
    ) -> int: ...
    def capget(self) -> CapSets: ...
    def capset(self, caps: CapSets) -> None: ...
    def mknod(self, path: str, mode: int, device: int) -> None: ...
    def setsid(self) -> None: ...
    def ioprio_set(self, which: int, who: int, ioprio: int) -> None: ...
    def sched_setattr(self, attr: SchedAttr) -> None: ...
    def personality(self, persona: int) -> int: ...


# NOTE: libc is called through _ctypes, the C half of ctypes, not ctypes itself: ctypes/__init__.py
# defines every C type and loads struct and types, 1.5 ms that `create` pays before it can fork.
# What is used here is what that module builds on: dlopen, a CFuncPtr subclass with the cdecl and
# errno flags (what CDLL(..., use_errno=True) makes), and the few simple types below.
if TYPE_CHECKING:
    _IntType = _ctypes._SimpleCData[int]
    _BytesType = _ctypes._SimpleCData[bytes]
else:
    _IntType = _BytesType = _ctypes._SimpleCData  # not subscriptable at run time


class _Int(_IntType):  # ctypes.c_int
    _type_ = "i"


class _UInt(_IntType):  # ctypes.c_uint (and c_uint32)
    _type_ = "I"


class _Long(_IntType):  # ctypes.c_long
    _type_ = "l"


class _ULong(_IntType):  # ctypes.c_ulong (and c_size_t)
    _type_ = "L"


class _Char(_BytesType):  # ctypes.c_char
    _type_ = "c"


class _LibcFunction(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _Int


class _Libc:
    """libc.so.6's functions by name, as ctypes.CDLL("libc.so.6", use_errno=True) has them."""

    def __init__(self) -> None:
        # "libc.so.6" directly: ctypes.util.find_library forks ldconfig, slow and fork-unsafe.
        self._handle = _ctypes.dlopen("libc.so.6", os.RTLD_NOW | os.RTLD_LOCAL)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # as CDLL: no C function for copy's or pickle's probes
        function = _LibcFunction((name, self))  # type: ignore[arg-type]  # a CDLL stand-in
        setattr(self, name, function)
        return function


class _CapHeader(_ctypes.Structure):
    _fields_ = [("version", _UInt), ("pid", _Int)]


class _CapData(_ctypes.Structure):
    _fields_ = [("effective", _UInt), ("permitted", _UInt), ("inheritable", _UInt)]


_libc: _Libc | None = None


def _lib() -> _Libc:
    global _libc
    if _libc is None:
        _libc = _Libc()
    return _libc


def libc() -> _Libc:
    """libc's functions, for the few calls RealSyscalls does not wrap (seccomp/install.py)."""
    return _lib()


def c_buffer(data: bytes) -> Any:
    """A mutable C copy of `data` (create_string_buffer without the NUL) to point the kernel at;
    `_ctypes.addressof` gives its address, `_ctypes.byref` passes it."""
    return (_Char * len(data)).from_buffer_copy(data)


#: the argument types libc() calls take (ctypes' c_int, c_ulong, c_long)
c_int, c_ulong, c_long = _Int, _ULong, _Long


def _check(result: int, what: str, *args: object) -> int:
    if result == -1:
        err = _ctypes.get_errno()
        detail = " ".join(repr(a) for a in args)
        raise OSError(err, f"{what}({detail}): {os.strerror(err)}")
    return result


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


class RealSyscalls:
    """Calls libc."""

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        libc = _lib()
        _check(
            libc.mount(_b(source), _b(target), _b(fstype), _ULong(flags), _b(data)),
            "mount",
            source,
            target,
            fstype,
            hex(flags),
            data,
        )

    def umount2(self, target: str, flags: int) -> None:
        _check(_lib().umount2(_b(target), _Int(flags)), "umount2", target, flags)

    def mount_setattr_recursive(self, target: str, attr_set: int, attr_clr: int) -> None:
        """MOUNT_ATTR_* set and cleared on `target` and every mount under it."""
        import struct

        nr = _NR[_MACHINE]["mount_setattr"]
        attr = c_buffer(struct.pack("=QQQQ", attr_set, attr_clr, 0, 0))
        _check(
            _lib().syscall(_Long(nr), _Int(AT_FDCWD), _b(target), _UInt(AT_RECURSIVE), attr,
                           _ULong(32)),
            "mount_setattr", target, hex(attr_set), hex(attr_clr),
        )

    def idmapped_bind(self, source: str, target: str, userns_fd: int) -> None:
        """A bind of `source` at `target` whose ids are seen through the mappings of user
        namespace `userns_fd` (open_tree, mount_setattr MOUNT_ATTR_IDMAP, move_mount)."""
        import struct

        lib = _lib()
        tree = _check(lib.syscall(_Long(_NR[_MACHINE]["open_tree"]), _Int(AT_FDCWD),
                                  _b(source), _UInt(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)),
                      "open_tree", source)
        try:
            attr = c_buffer(struct.pack("=QQQQ", MOUNT_ATTR_IDMAP, 0, 0, userns_fd))
            _check(lib.syscall(_Long(_NR[_MACHINE]["mount_setattr"]), _Int(tree), b"",
                               _UInt(AT_EMPTY_PATH), attr, _ULong(32)),
                   "mount_setattr(MOUNT_ATTR_IDMAP)", source)
            _check(lib.syscall(_Long(_NR[_MACHINE]["move_mount"]), _Int(tree), b"",
                               _Int(AT_FDCWD), _b(target), _UInt(MOVE_MOUNT_F_EMPTY_PATH)),
                   "move_mount", source, target)
        finally:
            os.close(tree)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        # glibc has no pivot_root wrapper.
        nr = _NR[_MACHINE]["pivot_root"]
        _check(
            _lib().syscall(_Long(nr), _b(new_root), _b(put_old)),
            "pivot_root",
            new_root,
            put_old,
        )

    def chroot(self, path: str) -> None:
        os.chroot(path)

    def setresuid(self, uid: int) -> None:
        os.setresuid(uid, uid, uid)

    def setresgid(self, gid: int) -> None:
        os.setresgid(gid, gid, gid)

    def child_subreaper(self) -> bool:
        """PR_GET_CHILD_SUBREAPER (the flag comes back through a pointer)."""
        flag = _Int(0)
        _check(
            _lib().prctl(_Int(PR_GET_CHILD_SUBREAPER), _ctypes.byref(flag)),
            "prctl",
            PR_GET_CHILD_SUBREAPER,
        )
        return bool(flag.value)

    def unshare(self, flags: int) -> None:
        _check(_lib().unshare(_Int(flags)), "unshare", hex(flags))

    def setns(self, fd: int, nstype: int) -> None:
        _check(_lib().setns(_Int(fd), _Int(nstype)), "setns", fd, hex(nstype))

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        _check(_lib().sethostname(raw, _ULong(len(raw))), "sethostname", name)

    def setdomainname(self, name: str) -> None:
        raw = name.encode()
        _check(_lib().setdomainname(raw, _ULong(len(raw))), "setdomainname", name)

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        args = [_ULong(a) for a in (arg2, arg3, arg4, arg5)]
        return _check(_lib().prctl(_Int(option), *args), "prctl", option, arg2, arg3)

    def capget(self) -> CapSets:
        hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        _check(_lib().capget(_ctypes.byref(hdr), _ctypes.byref(data)), "capget")
        return CapSets(
            effective=data[0].effective | (data[1].effective << 32),
            permitted=data[0].permitted | (data[1].permitted << 32),
            inheritable=data[0].inheritable | (data[1].inheritable << 32),
        )

    def capset(self, caps: CapSets) -> None:
        hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        for i, shift in enumerate((0, 32)):
            data[i].effective = (caps.effective >> shift) & 0xFFFFFFFF
            data[i].permitted = (caps.permitted >> shift) & 0xFFFFFFFF
            data[i].inheritable = (caps.inheritable >> shift) & 0xFFFFFFFF
        _check(_lib().capset(_ctypes.byref(hdr), _ctypes.byref(data)), "capset", caps)

    def mknod(self, path: str, mode: int, device: int) -> None:
        os.mknod(path, mode, device)

    def setsid(self) -> None:
        os.setsid()

    def ioprio_set(self, which: int, who: int, ioprio: int) -> None:
        nr = _NR[_MACHINE]["ioprio_set"]
        args = (_Int(which), _Int(who), _Int(ioprio))
        _check(_lib().syscall(_Long(nr), *args), "ioprio_set", which, who, ioprio)

    def sched_setattr(self, attr: SchedAttr) -> None:
        nr = _NR[_MACHINE]["sched_setattr"]
        buf = c_buffer(attr.pack())
        _check(
            _lib().syscall(_Long(nr), _Int(0), buf, _UInt(0)),
            "sched_setattr",
            attr,
        )

    def personality(self, persona: int) -> int:
        return _check(_lib().personality(_ULong(persona)), "personality", hex(persona))


@mutable_record
class RecordingSyscalls:
    """A fake that records every call as (name, args...) and succeeds, unless told to fail.

    `fail` maps a call name to an errno the call raises (optionally only when `fail_match` is in the
    arguments), which lets tests drive the fallbacks (mknod EPERM -> bind mount, and so on).
    """

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    caps: CapSets = field(default_factory=lambda: CapSets((1 << 41) - 1, (1 << 41) - 1, 0))

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        if name in self.fail:
            raise OSError(self.fail[name], f"{name}: injected failure")

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        self._record("mount", source, target, fstype, flags, data)

    def umount2(self, target: str, flags: int) -> None:
        self._record("umount2", target, flags)

    def mount_setattr_recursive(self, target: str, attr_set: int, attr_clr: int) -> None:
        self._record("mount_setattr_recursive", target, attr_set, attr_clr)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._record("pivot_root", new_root, put_old)

    def chroot(self, path: str) -> None:
        self._record("chroot", path)

    def setresuid(self, uid: int) -> None:
        self._record("setresuid", uid)

    def setresgid(self, gid: int) -> None:
        self._record("setresgid", gid)

    def child_subreaper(self) -> bool:
        return False

    def unshare(self, flags: int) -> None:
        self._record("unshare", flags)

    def setns(self, fd: int, nstype: int) -> None:
        self._record("setns", fd, nstype)

    def sethostname(self, name: str) -> None:
        self._record("sethostname", name)

    def setdomainname(self, name: str) -> None:
        self._record("setdomainname", name)

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        self._record("prctl", option, arg2, arg3, arg4, arg5)
        return 1 if option == PR_CAPBSET_READ else 0

    def capget(self) -> CapSets:
        return self.caps

    def capset(self, caps: CapSets) -> None:
        self._record("capset", caps)
        self.caps = caps

    def mknod(self, path: str, mode: int, device: int) -> None:
        self._record("mknod", path, mode, device)

    def setsid(self) -> None:
        self._record("setsid")

    def ioprio_set(self, which: int, who: int, ioprio: int) -> None:
        self._record("ioprio_set", which, who, ioprio)

    def sched_setattr(self, attr: SchedAttr) -> None:
        self._record("sched_setattr", attr)

    def personality(self, persona: int) -> int:
        self._record("personality", persona)
        return 0

    def mounts(self) -> list[tuple[Any, ...]]:
        """Just the mount calls, as (source, target, fstype, flags, data)."""
        return [c[1:] for c in self.calls if c[0] == "mount"]
