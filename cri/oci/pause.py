"""pause/resume: freeze and thaw every process of the container through its cgroup. No fork.

A paused container's status is derived from the freezer (see state.py). runc's rules: only a
created or running container can be paused, only a paused one resumed; exec and start refuse a
paused container; kill with SIGKILL thaws it afterwards so the processes can die (kill.py).
"""

from __future__ import annotations

from . import cgroups, lazylog
from .errors import InvalidState
from .statefile import CREATED, PAUSED, RUNNING, load, status_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .statefile import StrPath

log = lazylog.getLogger(__name__)


def pause(root: StrPath, container_id: str) -> None:
    record = load(root, container_id)
    status = status_name(root, record)
    if status not in (RUNNING, CREATED):
        raise InvalidState(f"container {container_id!r} is not running or created: {status}")
    cgroups.from_paths(record.cgroup_version, record.cgroup_paths).freeze()
    log.info("paused container %s", container_id, extra={"container_id": container_id})


def resume(root: StrPath, container_id: str) -> None:
    record = load(root, container_id)
    status = status_name(root, record)
    if status != PAUSED:
        raise InvalidState(f"container {container_id!r} is not paused: {status}")
    cgroups.from_paths(record.cgroup_version, record.cgroup_paths).thaw()
    log.info("resumed container %s", container_id, extra={"container_id": container_id})
