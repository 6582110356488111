"""ReopenContainerLog: after kubelet renamed the log for rotation, the shim opens a new file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cri.api.runtime.v1 import api_pb2 as v1
from cri.errors import FailedPrecondition, Internal
from cri.shim.client import ShimClient
from cri.shim.errors import ShimError

if TYPE_CHECKING:
    from cri.container.service import ContainerService


def reopen_log(svc: ContainerService, container_id: str) -> None:
    container = svc.get(container_id)
    if container.status.state != v1.CONTAINER_RUNNING:
        raise FailedPrecondition(f"container {container.id} is not running")
    if not container.log_path:
        raise FailedPrecondition(f"container {container.id} has no log path")
    try:
        ShimClient(svc.task_dir(container.id)).reopen_log()
    except ShimError as exc:
        raise Internal(f"reopening the log of {container.id}: {exc}") from None
