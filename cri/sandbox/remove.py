"""RemovePodSandbox: stop it, remove its containers, unmount and delete everything it owned.

Idempotent: removing a sandbox that is already gone is success.
"""

from __future__ import annotations

import logging
import shutil
from typing import TYPE_CHECKING

from cri.sandbox.stop import stop_sandbox
from cri.storage import RootfsLayout, unmount_rootfs
from cri.storage.mounts import unmount

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
        data_dir = svc.paths.sandbox_data(sandbox.id)
        state_dir = svc.paths.sandbox_state(sandbox.id)
        unmount(state_dir / "shm")
        unmount_rootfs(RootfsLayout(data_dir=data_dir / "rootfs",
                                    mount_point=state_dir / "rootfs"))
        shutil.rmtree(state_dir, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)
        svc.store.delete(sandbox.id)
    log.info("sandbox %s removed", sandbox.id)
