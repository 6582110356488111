"""Identity change: supplementary groups, gid, uid, umask, keeping capabilities across setuid."""

from __future__ import annotations

import os

from .spec import User
from .syscalls import PR_SET_KEEPCAPS, Syscalls


def change_identity(sys: Syscalls, user: User) -> None:
    """setgroups, setresgid, setresuid with PR_SET_KEEPCAPS so the later capset can restore caps.

    NOTE: the uid change clears the effective set even with KEEPCAPS; capabilities.apply() runs
    afterwards and sets it from the spec, as runc does.
    """
    sys.prctl(PR_SET_KEEPCAPS, 1)
    os.setgroups(list(user.additional_gids))
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    sys.prctl(PR_SET_KEEPCAPS, 0)
    # runc's default umask is 0022 when the spec gives none.
    os.umask(0o022 if user.umask is None else user.umask)


def home_for(uid: int, passwd: str = "/etc/passwd") -> str:
    """HOME for uid from the container's /etc/passwd (runc sets it when the env lacks HOME)."""
    try:
        with open(passwd) as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"
