"""StartContainer: create the task under a new shim and let it run.

Creating the task (forking its shim, the OCI create: namespaces, mounts, cgroups, the init
waiting for its start) is most of a start. So CreateContainer begins it on a thread of its own
(`begin_task`, unless `create_tasks_early = false`) and returns; kubelet's next call, this one,
waits for it and only starts the task. What the early task was made from is what a start would
make it from: the recorded spec. The container is CREATED throughout, with or without it:

- a failed early creation is this start's error, as a creation here would have been;
- whatever would make a start create from other inputs first discards it (`discard_early_task`):
  StopContainer and UpdateContainerResources on a created container, RemoveContainer, a start
  refused because the pod is no longer ready, and start-up recovery (one made by the daemon
  before a restart is no longer tracked).
"""

from __future__ import annotations

import logging
import shutil
import time
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from cri.api.runtime.v1 import api_pb2 as v1
from cri.background import in_background
from cri.container.model import Container, ContainerStatus
from cri.errors import CriError, FailedPrecondition
from cri.sandbox import READY
from cri.task.runner import pid_start_time

if TYPE_CHECKING:
    from cri.container.service import ContainerService

log = logging.getLogger(__name__)

# A discarded task's shim writes its exit file once the init is reaped: a few ms.
DISCARD_WAIT = 10.0


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
            discard_early_task(svc, container)
            raise FailedPrecondition(f"sandbox {sandbox.id} of container {container.id} "
                                     "is not ready")
        early = svc.take_early_task(container.id)
        runner = svc.runner(container)
        try:
            pid = early.result() if early is not None else create_task(svc, container)
            runner.start_created(container.id)
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


def create_task(svc: ContainerService, container: Container) -> int:
    """The task, created and waiting to be started; its host pid."""
    log_path = Path(container.log_path) if container.log_path else None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    return svc.runner(container).create(
        container.id, svc.paths.container_state(container.id), svc.task_dir(container.id),
        log_path=log_path, stdin=container.config.stdin,
        stdin_once=container.config.stdin_once, tty=container.config.tty)


def begin_task(svc: ContainerService, container: Container) -> None:
    """Create the new container's task while the caller moves on (see the module's notes)."""
    future: Future[int] = in_background("early-task", create_task, svc, container)
    svc.put_early_task(container.id, future)


def discard_early_task(svc: ContainerService, container: Container) -> None:
    """Undo the early creation of the container's task, if there is one: the task goes, and so
    does its task dir, so that a later start begins afresh. Called under the container lock."""
    early = svc.take_early_task(container.id)
    if early is None:
        return
    if early.exception() is not None:
        return  # it left nothing (the runner's create cleans up after itself)
    forget_created_task(svc, container)


def forget_created_task(svc: ContainerService, container: Container) -> None:
    """Delete a created, never started task (if the OCI runtime has one) and its task dir."""
    task_dir = svc.task_dir(container.id)
    if (svc.paths.oci_root / container.id).exists():
        runner = svc.runner(container)
        runner.delete(container.id, force=True)
        # NOTE: its shim writes an exit file once the init is reaped; waited for, so that it
        # cannot land in the task dir of the next start.
        if task_dir.exists() and runner.wait_exit(task_dir, DISCARD_WAIT) is None:
            log.warning("container %s: the shim of its discarded task did not finish",
                        container.id)
        log.info("container %s: its task, created ahead of a start, is discarded",
                 container.id)
    shutil.rmtree(task_dir, ignore_errors=True)
