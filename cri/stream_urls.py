"""Exec, Attach and PortForward: check the request against the domains, then hand out a
one-shot URL on the streaming server. Nothing runs until the client connects."""

from __future__ import annotations

from cri.container import attach as attach_op
from cri.container import exec as exec_op
from cri.container.service import ContainerService
from cri.sandbox import port_forward
from cri.sandbox.service import SandboxService
from cri.streaming.requests import AttachRequest, ExecRequest, PortForwardRequest, validate_ports
from cri.streaming.server import StreamingServer


class StreamUrls:
    def __init__(self, server: StreamingServer, containers: ContainerService,
                 sandboxes: SandboxService) -> None:
        self.server = server
        self.containers = containers
        self.sandboxes = sandboxes

    def exec_url(self, request: ExecRequest) -> str:
        container = exec_op.check_exec(self.containers, request)
        return self.server.url(ExecRequest(container.id, request.cmd, request.tty,
                                           request.stdin, request.stdout, request.stderr))

    def attach_url(self, request: AttachRequest) -> str:
        container = attach_op.check_attach(self.containers, request)
        return self.server.url(AttachRequest(container.id, request.tty, request.stdin,
                                             request.stdout, request.stderr))

    def port_forward_url(self, request: PortForwardRequest) -> str:
        validate_ports(request.ports)
        sandbox_id = port_forward.check_port_forward(self.sandboxes, request.pod_sandbox_id)
        return self.server.url(PortForwardRequest(sandbox_id, request.ports))
