"""Load a compiled filter into the kernel for the calling thread (and, with TSYNC, its siblings).

The kernel accepts a filter only from a thread with no_new_privs set or with CAP_SYS_ADMIN in its
user namespace; the init orders its steps for that (see cri.oci.init). A filter is permanent: it
survives execve and can only be narrowed by stacking more filters.
"""

from __future__ import annotations

import logging
import os

from .bpf import Program

log = logging.getLogger(__name__)

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1


def install_filter(program: Program, flags: int | None = None) -> None:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog), or prctl(PR_SET_SECCOMP) without flags
    (what runc does: the older call works on every kernel that has filters)."""
    import ctypes

    from .arch import native_name
    from .arch import sections as _sections

    flags = program.flags if flags is None else flags
    raw = program.pack()
    buf = ctypes.create_string_buffer(raw, len(raw))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(len(program), ctypes.cast(buf, ctypes.c_void_p))
    # "libc.so.6" directly: ctypes.util.find_library forks ldconfig, slow and fork-unsafe.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if flags == 0:
        rc = libc.prctl(
            ctypes.c_int(PR_SET_SECCOMP),
            ctypes.c_ulong(SECCOMP_MODE_FILTER),
            ctypes.byref(prog),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        )
    else:
        nr = _sections((), None)[0].syscalls()["seccomp"]
        rc = libc.syscall(
            ctypes.c_long(nr),
            ctypes.c_ulong(SECCOMP_SET_MODE_FILTER),
            ctypes.c_ulong(flags),
            ctypes.byref(prog),
        )
    if rc == 0:
        log.debug("seccomp filter of %d instructions installed (flags %#x)", len(program), flags)
        return
    if rc > 0:  # TSYNC: the id of a thread that could not be synchronised
        raise OSError(f"seccomp: thread {rc} could not be synchronised (TSYNC)")
    err = ctypes.get_errno()
    hint = ""
    if err == 13:  # EACCES
        hint = " (needs no_new_privs or CAP_SYS_ADMIN)"
    elif err == 22:  # EINVAL
        hint = f" (flags {flags:#x} or the program rejected by this kernel, {native_name()})"
    raise OSError(err, f"installing the seccomp filter: {os.strerror(err)}{hint}")
