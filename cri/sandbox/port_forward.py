"""PortForward: connections to ports inside a ready pod's network namespace."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from cri.errors import FailedPrecondition
from cri.network.dial import dial
from cri.sandbox.model import READY

if TYPE_CHECKING:
    from cri.sandbox.service import SandboxService


def check_port_forward(svc: SandboxService, sandbox_id: str) -> str:
    """The pod's id, if it can be forwarded to (NotFound, FailedPrecondition otherwise)."""
    sandbox = svc.get(sandbox_id)
    if sandbox.status.state != READY:
        raise FailedPrecondition(f"pod sandbox {sandbox.id} is not ready")
    return sandbox.id


def connect(svc: SandboxService, sandbox_id: str, port: int) -> socket.socket:
    sandbox = svc.get(sandbox_id)
    if sandbox.status.state != READY:
        raise FailedPrecondition(f"pod sandbox {sandbox.id} is not ready")
    return dial(sandbox.netns_path, port)
