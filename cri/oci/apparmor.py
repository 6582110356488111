"""AppArmor: whether the host has it, and confining the process's next execve to a profile.

The executor does what runc's apparmor.ApplyProfile does: write "exec <profile>" to the
process's own `attr/apparmor/exec` (`attr/exec` on kernels before 5.8, which have no per-LSM
directory). The kernel switches profile at the execve that follows, so this is one of the last
steps of the init and of an exec'd process, before no_new_privs (a transition under no_new_privs
is allowed only to a profile that confines at least as much).

Profiles are not loaded here: the CRI side (cri/spec/apparmor.py) loads its default one, and a
Localhost profile must be loaded on the node already.
"""

from __future__ import annotations

import os

from .errors import InitFailed

ENABLED_FLAG = "/sys/module/apparmor/parameters/enabled"


def is_enabled(flag: str | None = None) -> bool:
    try:
        with open(flag or ENABLED_FLAG) as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def apply_on_exec(profile: str, proc: str = "/proc") -> None:
    """Ask for `profile` at the next execve of the calling thread."""
    attr = f"{proc}/thread-self/attr/apparmor/exec"
    if not os.path.exists(attr):
        attr = f"{proc}/thread-self/attr/exec"  # the older, LSM-neutral convention
    try:
        fd = os.open(attr, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, f"exec {profile}".encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise InitFailed(f"apparmor: cannot apply profile {profile!r}: {e}") from None
