"""RemovePodSandbox: stop it, remove its containers, unmount and delete everything it owned.

Idempotent: removing a sandbox that is already gone is success.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cri.sandbox.stop import stop_sandbox

if TYPE_CHECKING:
    from cri.sandbox.service import SandboxService

log = logging.getLogger(__name__)


def remove_sandbox(svc: SandboxService, sandbox_id: str) -> None:
    sandbox = svc.store.find(sandbox_id)
    if sandbox is None:
        return
    stop_sandbox(svc, sandbox.id)
    with svc.lock(sandbox.id):
        if svc.containers is not None:
            svc.containers.remove_all(sandbox.id)
        # The shm and rootfs mounts go with their directories to the trash
        # (cri/storage/trash.py), unmounted and deleted just after this returns.
        svc.trash.discard(svc.paths.sandbox_state(sandbox.id))
        svc.trash.discard(svc.paths.sandbox_data(sandbox.id))
        svc.store.delete(sandbox.id)
    log.info("sandbox %s removed", sandbox.id)
