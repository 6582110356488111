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
    # records it and deletes the task, the others find it recorded. Two deletes at once would
    # race on the task's cgroup (ENODEV from the one that writes a file the other removed).
    with svc.exit_lock(container.id):
        current = svc.store.find(container.id)
        if current is None or current.status.state != v1.CONTAINER_RUNNING:
            return current or container
        code, finished = task_exit.exit_code, task_exit.finished_at
        oom = task_exit.oom_killed or _oom_killed(svc, container)
        status = svc.store.update_status(container.id,
                                         lambda s: exited_status(s, code, finished, oom))
        try:
            runner.delete(container.id, force=True)
        except Exception as exc:  # noqa: BLE001 - stale OCI state must not hide the exit
            log.warning("container %s: deleting the exited task: %s", container.id, exc)
    return replace(container, status=status)
