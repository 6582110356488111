"""Load a compiled filter into the kernel for the calling thread (and, with TSYNC, its siblings).

The kernel accepts a filter only from a thread with no_new_privs set or with CAP_SYS_ADMIN in its
user namespace; the init orders its steps for that (see cri.oci.init). A filter is permanent: it
survives execve and can only be narrowed by stacking more filters.

`arm()` does all the preparation (libc, the `struct sock_fprog`) up front and returns a
call that only makes the syscall: the init arms the filter while the host's filesystem is still
its root (Python imports modules lazily, from files that pivot_root leaves behind) and installs
it at the last moment.
"""

from __future__ import annotations

import _ctypes
import os
import struct

from .. import lazylog
from ..syscalls import c_buffer, c_int, c_long, c_ulong, libc
from .bpf import Program

TYPE_CHECKING = False
if TYPE_CHECKING:  # collections.abc costs 2 ms, in the init of every create with a profile
    from collections.abc import Callable

log = lazylog.getLogger(__name__)

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1
EACCES = 13
EINVAL = 22


def arm(program: Program, flags: int | None = None) -> Callable[[], None]:
    """Prepare `program` for installation; the returned call installs it (raising OSError).

    Without flags it uses prctl(PR_SET_SECCOMP) as runc does (every kernel with filters has it);
    with flags, seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog).
    """
    from .arch import native_name, sections

    flags = program.flags if flags is None else flags
    # `struct sock_fprog` {unsigned short len; struct sock_filter *filter;}, native alignment
    # as the C compiler's; `install` keeps the filter's buffer alive with the struct.
    filter_buffer = c_buffer(program.pack())
    fprog = c_buffer(struct.pack("@HP", len(program), _ctypes.addressof(filter_buffer)))
    refs = (fprog, filter_buffer)
    lib = libc()
    nr_seccomp = sections(())[0].syscalls()["seccomp"] if flags else 0
    machine = native_name()
    count = len(program)

    def install() -> None:
        if flags == 0:
            rc = lib.prctl(
                c_int(PR_SET_SECCOMP),
                c_ulong(SECCOMP_MODE_FILTER),
                _ctypes.byref(refs[0]),
                c_ulong(0),
                c_ulong(0),
            )
        else:
            rc = lib.syscall(
                c_long(nr_seccomp),
                c_ulong(SECCOMP_SET_MODE_FILTER),
                c_ulong(flags),
                _ctypes.byref(refs[0]),
            )
        if rc == 0:
            log.debug("seccomp filter of %d instructions installed (flags %#x)", count, flags)
            return
        if rc > 0:  # TSYNC: the id of a thread that could not be synchronised
            raise OSError(f"seccomp: thread {rc} could not be synchronised (TSYNC)")
        err = _ctypes.get_errno()
        hint = ""
        if err == EACCES:
            hint = " (needs no_new_privs or CAP_SYS_ADMIN)"
        elif err == EINVAL:
            hint = f" (flags {flags:#x} or the program refused by this {machine} kernel)"
        raise OSError(err, f"installing the seccomp filter: {os.strerror(err)}{hint}")

    return install


def install_filter(program: Program, flags: int | None = None) -> None:
    """Install `program` now."""
    arm(program, flags)()
