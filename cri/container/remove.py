"""RemoveContainer: force-stop if running, then delete its task, rootfs and record.

The rootfs and the container's directories go to the trash (cri/storage/trash.py): unmounted and
deleted just after this returns. Idempotent: removing an unknown container is success. The log
file stays: it is kubelet's.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cri.container.start import discard_early_task
from cri.container.stop import stop_container

if TYPE_CHECKING:
    from cri.container.service import ContainerService

log = logging.getLogger(__name__)


def remove_container(svc: ContainerService, container_id: str) -> None:
    container = svc.store.find(container_id)
    if container is None:
        return
    stop_container(svc, container.id, 0)
    with svc.lock(container.id):
        discard_early_task(svc, container)  # in case a start began and failed in between
        svc.runner(container).delete(container.id, force=True)
        # Both directories first, the record last: a crash between leaves a record to remove
        # again, never a directory without one.
        svc.trash.discard(svc.paths.container_state(container.id))
        svc.trash.discard(svc.paths.container_data(container.id))
        svc.store.delete(container)
    log.info("container %s removed", container.id)
