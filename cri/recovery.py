"""Start-up recovery: bring the recorded state in line with what survived while we were away.

Assumptions:
- Shims outlive the daemon. A container whose shim still runs is still ours; one whose shim has
  finished left its exit status in `<state>/containers/<id>/task/exit`.
- A pid is ours only if its start time (field 22 of /proc/PID/stat) matches the recorded one:
  after a reboot, the same pid is someone else.
- A reboot empties the runtime state dir: every task is gone, so containers become EXITED and
  sandboxes NOTREADY; kubelet then stops and removes them, which unmounts and deletes the rest.
- One broken record is logged and left for kubelet to remove; it never stops the daemon.
- What still runs is handed to the exit watcher, so its exit is noticed (and announced) when it
  happens, as for tasks started by this daemon.

The gRPC server answers UNAVAILABLE until this has run.
"""

from __future__ import annotations

import logging

from cri.api.runtime.v1 import api_pb2 as v1
from cri.container import ContainerService
from cri.container.start import forget_created_task
from cri.sandbox import SandboxService

log = logging.getLogger(__name__)


def recover(sandboxes: SandboxService, containers: ContainerService) -> None:
    for sandbox in sandboxes.store.list():
        try:
            recovered = sandboxes.get(sandbox.id)
            sandboxes.watch_exit(recovered)
            log.info("recovered sandbox %s: %s", sandbox.id, recovered.status.state)
        except Exception:  # noqa: BLE001 - see the module's assumptions
            log.exception("sandbox %s could not be recovered", sandbox.id)
    for container in containers.store.list():
        try:
            if container.status.state == v1.CONTAINER_CREATED:
                # A task CreateContainer began before the restart is no longer tracked.
                with containers.lock(container.id):
                    forget_created_task(containers, container)
            recovered_container = containers.get(container.id)
            containers.watch_exit(recovered_container)
            log.info("recovered container %s: state %d", container.id,
                     recovered_container.status.state)
        except Exception:  # noqa: BLE001
            log.exception("container %s could not be recovered", container.id)
