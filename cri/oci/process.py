"""The container process: environment, working directory, executable lookup, the final exec.

Shared by the init (create) and exec. Lookup happens before the init reports "ready", so a missing
executable fails `create` (runc does the same), not a later `start`.
"""

from __future__ import annotations

import os
import stat

from .errors import InvalidSpec
from .spec import Process
from .users import home_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Sequence
else:
    import _signal  # what `signal` re-exports, without its enums (4 ms)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def environment(proc: Process) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in proc.env:
        key, _, value = entry.partition("=")
        env[key] = value
    if "HOME" not in env:
        env["HOME"] = home_for(proc.user.uid)
    return env


def _executable(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and os.access(path, os.X_OK)


def resolve(arg0: str, env: dict[str, str]) -> str:
    """args[0] via PATH from the process env (not ours), inside the current root."""
    if "/" in arg0:
        if not os.path.exists(arg0):
            raise InvalidSpec(f'exec: "{arg0}": stat {arg0}: no such file or directory')
        if not _executable(arg0):
            raise InvalidSpec(f'exec: "{arg0}": permission denied or not a regular file')
        return arg0
    for d in env.get("PATH", DEFAULT_PATH).split(":"):
        candidate = os.path.join(d or ".", arg0)
        if _executable(candidate):
            return candidate
    raise InvalidSpec(f'exec: "{arg0}": executable file not found in $PATH')


def make_cwd(cwd: str) -> None:
    """mkdir -p, run inside the container's root (so `..` and symlinks stay in it)."""
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)
    except FileExistsError:
        pass  # a file or a dangling link: chdir says what is wrong with it
    except OSError as e:
        raise InvalidSpec(f"cwd {cwd!r}: cannot create it: {e.strerror}") from None


def chdir(cwd: str) -> None:
    try:
        os.chdir(cwd)
    except OSError as e:
        raise InvalidSpec(f"cwd {cwd!r}: {e.strerror}") from None


def reset_signals() -> None:
    """Undo what Python did to dispositions and the mask; ignored signals survive exec."""
    for sig in (
        _signal.SIGPIPE,
        _signal.SIGXFSZ,
        _signal.SIGINT,
        _signal.SIGTERM,
        _signal.SIGCHLD,
        _signal.SIGHUP,
        _signal.SIGQUIT,
    ):
        _signal.signal(sig, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, set())


def install_stdio(stdio: Sequence[int], extra: Sequence[int] = ()) -> None:
    """dup2 stdio to 0, 1, 2 and `extra` (--preserve-fds, LISTEN_FDS) to 3, 4, ... (inheritable).

    Through copies above every target, so any permutation or overlap (stdout=2, extra fd 4
    becoming 3) works.
    """
    import fcntl

    wanted = [*stdio, *extra]
    copies = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, len(wanted)) for fd in wanted]
    for target, fd in enumerate(copies):
        os.dup2(fd, target, inheritable=True)
    for fd in copies:
        os.close(fd)


def open_fds() -> list[int] | None:
    """The fds open in this process, from /proc/self/fd; None where that is not readable (no
    /proc in the container, or a /proc of another pid namespace)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    return sorted(int(n) for n in names if n.isdigit())


def close_other_fds(keep: Sequence[int] = (), start: int = 3) -> None:
    """Close every fd >= start except `keep`, so nothing of the caller leaks into the container.

    NOTE: only the fds that are open, listed from /proc/self/fd (runc's CloseExecFrom does the
    same). os.closerange falls back to one close() per number when close_range(2) is refused, as
    a container's seccomp profile without it does (installed before this step unless
    noNewPrivileges): a million syscalls, 200 ms between `start` and the execve, during which a
    signal to a pid namespace's init is dropped (it has no handler yet).
    """
    fds = open_fds()
    if fds is not None:
        for fd in fds:
            if fd >= start and fd not in keep:
                try:  # noqa: SIM105 - contextlib costs 3 ms to import
                    os.close(fd)
                except OSError:  # the listing's own fd, closed by now
                    pass
        return
    for fd in sorted(k for k in keep if k >= start):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, 1 << 20)


def execute(path: str, args: Sequence[str], env: dict[str, str]) -> None:
    os.execve(path, list(args), env)
