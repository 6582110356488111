"""kill: signal the init (through a pidfd, after checking its start time) or every cgroup member."""

from __future__ import annotations

import contextlib
import logging
import os
import signal as _signal
from pathlib import Path

from . import cgroups
from .errors import InvalidState
from .state import Record, Status, init_alive, load, status_of

log = logging.getLogger(__name__)


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
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def kill(root: Path, container_id: str, signal: int, *, all: bool = False) -> None:
    record = load(root, container_id)
    status = status_of(root, record)
    if status is Status.STOPPED and not all:
        raise InvalidState(f"container {container_id!r} is not running")
    log.info(
        "kill %s signal %d all=%s", container_id, signal, all, extra={"container_id": container_id}
    )
    if all:
        signal_all(record, signal)
        signal_init(record, signal)
    elif not signal_init(record, signal):
        raise InvalidState(f"container {container_id!r} is not running")
