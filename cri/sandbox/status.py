"""PodSandboxStatus and ListPodSandbox: the recorded sandbox, corrected by what is alive."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from cri.sandbox.model import READY, Sandbox
from cri.task import TaskRunner

if TYPE_CHECKING:
    from cri.sandbox.service import SandboxService


def refreshed(svc: SandboxService, sandbox: Sandbox) -> Sandbox:
    """A READY sandbox whose pause process died is NOTREADY (kubelet then recreates the pod)."""
    status = sandbox.status
    if status.state == READY and not TaskRunner.is_alive(status.pid, status.pid_start):
        status = svc.store.update_status(sandbox.id, lambda s: s.stopped())
        return replace(sandbox, status=status)
    return sandbox
