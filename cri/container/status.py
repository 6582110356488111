"""ContainerStatus and ListContainers: the record, corrected by the shim's exit file."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from cri.api.runtime.v1 import api_pb2 as v1
from cri.container.model import Container, ContainerStatus

if TYPE_CHECKING:
    from cri.container.service import ContainerService

log = logging.getLogger(__name__)


def exited_status(status: ContainerStatus, exit_code: int, finished_at: int,
                  oom_killed: bool = False) -> ContainerStatus:
    reason = "OOMKilled" if oom_killed else "Completed" if exit_code == 0 else "Error"
    return replace(status, finished_at=finished_at, exit_code=exit_code, reason=reason)


def _oom_killed(svc: ContainerService, container: Container) -> bool:
    """Read before the task's cgroup is deleted: the kernel keeps the count only with it."""
    from cri.oci.cgroups.oom import oom_kill_count

    spec = svc.oci_spec(container)
    return spec is not None and bool(oom_kill_count(spec["linux"]["cgroupsPath"]))


def refreshed(svc: ContainerService, container: Container) -> Container:
    """Record an exit the shim has seen since we last looked, and free the task's OCI state."""
    if container.status.state != v1.CONTAINER_RUNNING:
        return container
    runner = svc.runner(container)
    task_exit = runner.exit_status(svc.task_dir(container.id))
    if task_exit is None:
        if runner.is_alive(container.status.pid, container.status.pid_start):
            return container
        # Neither alive nor an exit file: the shim died too (or the node rebooted).
        task_exit = runner.wait_exit(svc.task_dir(container.id), 0.5)
        if task_exit is None:
            import time

            status = svc.store.update_status(container.id, lambda s: replace(
                s, finished_at=time.time_ns(), exit_code=255, reason="Unknown",
                message="the container's monitor is gone; its exit status is lost"))
            return replace(container, status=status)
    # NOTE: readers (List*, the exit watcher, a stop) can all see the same exit at once; one
    # records it, the others find it recorded.
    with svc.exit_lock(container.id):
        current = svc.store.find(container.id)
        if current is None or current.status.state != v1.CONTAINER_RUNNING:
            container = current or container
        else:
            code, finished = task_exit.exit_code, task_exit.finished_at
            oom = task_exit.oom_killed or _oom_killed(svc, container)
            status = svc.store.update_status(container.id,
                                             lambda s: exited_status(s, code, finished, oom))
            container = replace(container, status=status)
    release_task(svc, container)
    return container


def release_task(svc: ContainerService, container: Container) -> None:
    """Delete an exited container's task (its OCI state and cgroup), unless an operation on the
    container holds its lock: a task is only ever deleted under that lock, since two deletes,
    or a delete beside a stop's kill, race on its cgroup (ENODEV, runc's "invalid state
    transition"). The holder is a stop or a remove, which release the task themselves, or an
    update or start, after which a later read or the remove does."""
    lock = svc.lock(container.id)
    if not lock.acquire(blocking=False):
        return
    try:
        svc.runner(container).delete(container.id, force=True)
    except Exception as exc:  # noqa: BLE001 - stale OCI state must not hide the exit
        log.warning("container %s: deleting the exited task: %s", container.id, exc)
    finally:
        lock.release()
