"""File descriptors passed into the container beyond stdio: --preserve-fds and socket activation.

runc's contract: with LISTEN_FDS=N and LISTEN_PID=<our pid> in the runtime's environment
(systemd socket activation), fds 3..3+N-1 go to the container init at the same numbers and its
environment gets LISTEN_FDS=N and LISTEN_PID=1 (create only, not exec). `--preserve-fds M` then
passes the next M fds (3+N..3+N+M-1) as they are. The library takes the caller's fds as a list
(`preserve_fds`) that becomes 3, 4, ... in the container, plus how many of them are listen fds.
"""

from __future__ import annotations

import os

from .errors import OciError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


def listen_fds(environ: Mapping[str, str], pid: int) -> int:
    """N from LISTEN_FDS when LISTEN_PID names us (sd_listen_fds rules); else 0."""
    try:
        if int(environ.get("LISTEN_PID", "")) != pid:
            return 0
        count = int(environ.get("LISTEN_FDS", ""))
    except ValueError:
        return 0
    return max(count, 0)


def cli_fds(environ: Mapping[str, str], pid: int, preserve: int, *, activation: bool) -> list[int]:
    """The CLI's fds to pass: the activation fds (create only), then --preserve-fds more."""
    base = 3 + (listen_fds(environ, pid) if activation else 0)
    return list(range(3, base)) + list(range(base, base + preserve))


def check(fds: Sequence[int]) -> None:
    """Every fd to pass must be open (runc: "unable to stat preserved-fd")."""
    for i, fd in enumerate(fds):
        try:
            os.fstat(fd)
        except OSError as e:
            raise OciError(f"unable to stat preserved-fd {fd} (#{i}): {e.strerror}") from None


def activation_env(count: int) -> tuple[str, ...]:
    return (f"LISTEN_FDS={count}", "LISTEN_PID=1") if count else ()
