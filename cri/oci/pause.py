"""pause/resume: freeze and thaw every process of the container through its cgroup. No fork.

A paused container's status is derived from the freezer (see state.py). runc's rules: only a
created or running container can be paused, only a paused one resumed; exec and start refuse a
paused container; kill with SIGKILL thaws it afterwards so the processes can die (kill.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import cgroups
from .errors import InvalidState
from .state import Status, load, status_of

log = logging.getLogger(__name__)


def pause(root: Path, container_id: str) -> None:
    record = load(root, container_id)
    status = status_of(root, record)
    if status not in (Status.RUNNING, Status.CREATED):
        raise InvalidState(f"container {container_id!r} is not running or created: {status.value}")
    cgroups.from_paths(record.cgroup_version, record.cgroup_paths).freeze()
    log.info("paused container %s", container_id, extra={"container_id": container_id})


def resume(root: Path, container_id: str) -> None:
    record = load(root, container_id)
    status = status_of(root, record)
    if status is not Status.PAUSED:
        raise InvalidState(f"container {container_id!r} is not paused: {status.value}")
    cgroups.from_paths(record.cgroup_version, record.cgroup_paths).thaw()
    log.info("resumed container %s", container_id, extra={"container_id": container_id})
