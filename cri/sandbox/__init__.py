"""Pod sandboxes: the pause task that owns a pod's namespaces, and the pod's files."""

from cri.sandbox.model import NOTREADY, READY, Sandbox, SandboxStatus
from cri.sandbox.service import PodContainers, SandboxService
from cri.sandbox.store import SandboxStore

__all__ = ["NOTREADY", "READY", "PodContainers", "Sandbox", "SandboxService", "SandboxStatus",
           "SandboxStore"]
