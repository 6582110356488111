"""RemoveContainer: force-stop if running, then delete its task, rootfs and record.

Idempotent: removing an unknown container is success. The log file stays: it is kubelet's.
"""

from __future__ import annotations

import logging
import shutil
from typing import TYPE_CHECKING

from cri.container.image_volumes import unmount_image_volumes
from cri.container.start import discard_early_task
from cri.container.stop import stop_container
from cri.storage import unmount_rootfs

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
        unmount_rootfs(svc.rootfs_layout(container.id))
        unmount_image_volumes(svc, container.id)
        shutil.rmtree(svc.paths.container_state(container.id), ignore_errors=True)
        shutil.rmtree(svc.paths.container_data(container.id), ignore_errors=True)
        svc.store.delete(container)
    log.info("container %s removed", container.id)
