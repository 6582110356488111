"""kill: signal the init (through a pidfd, after checking its start time) or every cgroup member.

`--all` freezes the cgroup around the signals when it can (runc's signalAllProcesses), so a
process forking at that moment cannot leave a child unsignalled. A paused container stays frozen,
except after SIGKILL: frozen (v1) processes cannot die, so it is thawed, as runc does.
"""

from __future__ import annotations

import os

from . import cgroups, lazylog
from .cgroups.freezer import FreezeFailed
from .errors import InvalidState
from .signals import SIGKILL
from .statefile import CREATED, PAUSED, RUNNING, STOPPED, Record, init_alive, load, status_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal

    from .statefile import StrPath
else:
    import _signal  # what `signal` re-exports, without its enums (4 ms)

log = lazylog.getLogger(__name__)


def signal_init(record: Record, sig: int) -> bool:
    """Send sig to the init if it is still ours; False if it is gone."""
    try:
        pidfd = os.pidfd_open(record.pid)
    except ProcessLookupError:
        return False
    try:
        # NOTE: the start-time check after pidfd_open pins the identity: the pidfd can't be
        # redirected to a reused pid, so the signal can only reach the process we checked.
        if not init_alive(record):
            return False
        _signal.pidfd_send_signal(pidfd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(pidfd)


def signal_all(record: Record, sig: int) -> None:
    manager = cgroups.from_paths(record.cgroup_version, record.cgroup_paths)
    for pid in manager.pids():
        try:  # noqa: SIM105 - contextlib costs 3 ms to import
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _signal_all_frozen(record: Record, sig: int, *, freeze: bool) -> None:
    manager = cgroups.from_paths(record.cgroup_version, record.cgroup_paths)
    froze = False
    if freeze:
        try:
            manager.freeze()
            froze = True
        except (FreezeFailed, OSError) as e:
            log.warning("kill --all of %s without freezing: %s", record.id, e)
    try:
        signal_all(record, sig)
    finally:
        if froze:
            manager.thaw()


def thaw_after_kill(record: Record) -> None:
    """After SIGKILL to a paused container: let the processes run, so they can die."""
    try:  # noqa: SIM105
        cgroups.from_paths(record.cgroup_version, record.cgroup_paths).thaw()
    except (FreezeFailed, OSError):
        pass


def kill(root: StrPath, container_id: str, signal: int, *, all: bool = False) -> None:
    record = load(root, container_id)
    status = status_name(root, record)
    if status == STOPPED and not all:
        raise InvalidState(f"container {container_id!r} is not running")
    log.info(
        "kill %s signal %d all=%s", container_id, signal, all, extra={"container_id": container_id}
    )
    paused = status == PAUSED
    if all:
        _signal_all_frozen(record, signal, freeze=status in (RUNNING, CREATED))
        signal_init(record, signal)
    elif not signal_init(record, signal):
        raise InvalidState(f"container {container_id!r} is not running")
    if paused and signal == SIGKILL:
        thaw_after_kill(record)
