"""StartContainer: create the task under a new shim and let it run."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from cri.api.runtime.v1 import api_pb2 as v1
from cri.container.model import ContainerStatus
from cri.errors import CriError, FailedPrecondition
from cri.sandbox import READY
from cri.task.runner import pid_start_time

if TYPE_CHECKING:
    from cri.container.service import ContainerService

log = logging.getLogger(__name__)


def start_container(svc: ContainerService, container_id: str) -> None:
    container = svc.store.get(container_id)
    with svc.lock(container.id):
        container = svc.store.get(container.id)
        if container.status.state != v1.CONTAINER_CREATED:
            raise FailedPrecondition(
                f"container {container.id} is {v1.ContainerState.Name(container.status.state)}, "
                "not CONTAINER_CREATED")
        sandbox = svc.sandboxes.get(container.sandbox_id)
        if sandbox.status.state != READY:
            raise FailedPrecondition(f"sandbox {sandbox.id} of container {container.id} "
                                     "is not ready")
        log_path = Path(container.log_path) if container.log_path else None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        runner = svc.runner(container)
        try:
            pid = runner.create_and_start(
                container.id, svc.paths.container_state(container.id), svc.task_dir(container.id),
                log_path=log_path, stdin=container.config.stdin,
                stdin_once=container.config.stdin_once,
                tty=container.config.tty)
        except Exception as exc:
            message = exc.message if isinstance(exc, CriError) else str(exc)
            svc.store.update_status(container.id, lambda s: replace(
                s, finished_at=time.time_ns(), exit_code=128, reason="StartError",
                message=message))
            raise
        start = pid_start_time(pid)
        status = svc.store.update_status(container.id, lambda s: ContainerStatus(
            started_at=time.time_ns(), pid=pid, pid_start=start))
        svc.watch_exit(replace(container, status=status))
    log.info("container %s started, pid %d (host)", container.id, pid)
