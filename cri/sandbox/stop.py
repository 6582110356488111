"""StopPodSandbox: stop the pod's containers, kill the pause task, release the network.

Idempotent, as kubelet calls it repeatedly: an unknown or already stopped sandbox is success.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from cri.background import in_background
from cri.errors import Internal
from cri.network import remove_netns
from cri.network.cni import PluginError
from cri.sandbox.model import Sandbox
from cri.task import TaskRunner

if TYPE_CHECKING:
    from cri.sandbox.service import SandboxService

log = logging.getLogger(__name__)

PAUSE_EXIT_TIMEOUT = 10.0


def sandbox_runner(svc: SandboxService, sandbox: Sandbox) -> TaskRunner:
    try:
        handler = svc.config.handler(sandbox.runtime_handler)
    except KeyError:
        # The handler left the configuration since; the task was made by it, but the in-tree
        # executor can still kill and forget it through the OCI state it shares.
        handler = svc.config.handler("")
    return TaskRunner(svc.paths.oci_root, handler)


def stop_sandbox(svc: SandboxService, sandbox_id: str) -> None:
    sandbox = svc.store.find(sandbox_id)
    if sandbox is None:
        return
    with svc.lock(sandbox.id):
        if svc.containers is not None:
            svc.containers.stop_all(sandbox.id)
        runner = sandbox_runner(svc, sandbox)
        # NOTE: the network's DEL (60 ms and more of plugins here) runs while the pause task is
        # killed and deleted: it needs only the pinned namespace, which stays until both are done.
        network = (in_background("pod-network-del", svc.network.teardown, sandbox.id,
                                  svc.paths.sandbox_state(sandbox.id))
                   if sandbox.netns_path else None)
        task_dir = svc.paths.sandbox_state(sandbox.id) / "task"
        if sandbox.status.pid and runner.exit_status(task_dir) is None:
            try:
                runner.kill(sandbox.id, signal.SIGKILL, all=True)
            except Exception as exc:  # noqa: BLE001 - it may have died on its own
                log.debug("sandbox %s: kill: %s", sandbox.id, exc)
            if runner.wait_exit(task_dir, PAUSE_EXIT_TIMEOUT) is None:
                log.warning("sandbox %s: pause pid %d did not exit", sandbox.id,
                            sandbox.status.pid)
        try:
            runner.delete(sandbox.id, force=True)
        finally:
            error = network.exception() if network is not None else None
        if isinstance(error, PluginError):
            # The namespace and the cache stay, so the next StopPodSandbox tries again.
            raise Internal(f"tearing down the network of pod sandbox {sandbox.id}: {error}"
                           ) from None
        if error is not None:
            raise error
        if sandbox.netns_path:
            remove_netns(Path(sandbox.netns_path))
        svc.store.update_status(sandbox.id, lambda s: s.stopped())
    log.info("sandbox %s stopped", sandbox.id)
