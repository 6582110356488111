"""StopContainer: the stop signal, then SIGKILL once the timeout has passed.

Idempotent: stopping a container that is not running, or unknown, is success.
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING

from cri.api.runtime.v1 import api_pb2 as v1
from cri.container.start import discard_early_task
from cri.container.status import refreshed, release_task
from cri.image import ImageConfig
from cri.spec.container import stop_signal
from cri.task import TaskRunner

if TYPE_CHECKING:
    from cri.container.service import ContainerService

log = logging.getLogger(__name__)

# After SIGKILL a process is gone as soon as the kernel has torn it down; this bounds a hang.
KILL_WAIT = 10.0


def stop_container(svc: ContainerService, container_id: str, timeout: float) -> None:
    container = svc.store.find(container_id)
    if container is None:
        return
    with svc.lock(container.id):
        container = refreshed(svc, svc.store.get(container.id))
        if container.status.state != v1.CONTAINER_RUNNING:
            if container.status.state == v1.CONTAINER_EXITED:
                release_task(svc, container)  # a reader recorded the exit while we waited
            elif container.status.state == v1.CONTAINER_CREATED:
                discard_early_task(svc, container)  # nothing of it may run after a stop
            return
        runner = svc.runner(container)
        task_dir = svc.task_dir(container.id)
        if timeout > 0:
            image = svc.images.get(container.image_id)
            sig = stop_signal(container.config, image.config if image else _NO_IMAGE)
            _signal(runner, container.id, sig, all=False)
            if runner.wait_exit(task_dir, timeout, pid=container.status.pid,
                                pid_start=container.status.pid_start) is None:
                log.info("container %s: still running %.0f s after signal %d, killing",
                         container.id, timeout, sig)
        if runner.exit_status(task_dir) is None:
            # The init of a pid namespace of its own takes every process in it along when it
            # dies; only in a shared one (the pod's, the node's, another container's) are the
            # container's other processes signalled one by one (--all freezes the cgroup for
            # that, about 1 ms on cgroup v1). containerd decides the same way.
            own = (container.config.linux.security_context.namespace_options.pid
                   == v1.CONTAINER)
            _signal(runner, container.id, signal.SIGKILL, all=not own)
            if runner.wait_exit(task_dir, KILL_WAIT, pid=container.status.pid,
                                pid_start=container.status.pid_start) is None:
                log.warning("container %s did not exit after SIGKILL", container.id)
        final = refreshed(svc, svc.store.get(container.id))
        if final.status.state == v1.CONTAINER_EXITED:
            release_task(svc, final)  # if a reader recorded the exit, it left this to us
    log.info("container %s stopped", container.id)


_NO_IMAGE = ImageConfig(user="", env=(), entrypoint=(), cmd=(), working_dir="", labels={},
                        stop_signal="", volumes=())


def _signal(runner: TaskRunner, container_id: str, sig: int, *, all: bool) -> None:
    try:
        runner.kill(container_id, sig, all=all)
    except Exception as exc:  # noqa: BLE001 - it may have exited in between
        log.debug("container %s: signal %d: %s", container_id, sig, exc)
