"""The streaming server's runtime seam (cri.streaming.runtime.Runtime), answered by the
container domain (exec, attach) and the sandbox domain (port-forward)."""

from __future__ import annotations

import asyncio
import socket

from cri.container import attach as attach_op
from cri.container import exec as exec_op
from cri.container.service import ContainerService
from cri.sandbox import port_forward
from cri.sandbox.service import SandboxService
from cri.shim.attach import Attachment
from cri.streaming.requests import AttachRequest, ExecRequest
from cri.streaming.runtime import Process


class StreamRuntime:
    def __init__(self, containers: ContainerService, sandboxes: SandboxService) -> None:
        self.containers = containers
        self.sandboxes = sandboxes

    async def exec(self, request: ExecRequest) -> Process:
        return exec_op.start_exec(self.containers, request)

    async def attach(self, request: AttachRequest) -> Process:
        sock, pending, end_with_stdin = await asyncio.to_thread(
            attach_op.connect, self.containers, request)
        try:
            return await Attachment.open(sock, pending, end_with_stdin=end_with_stdin)
        except BaseException:
            sock.close()
            raise

    async def dial(self, pod_sandbox_id: str, port: int) -> socket.socket:
        return await asyncio.to_thread(port_forward.connect, self.sandboxes, pod_sandbox_id,
                                       port)
