"""Attach: a connection to the shim that holds the container's stdio (cri.shim.attach)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from cri.api.runtime.v1 import api_pb2 as v1
from cri.errors import FailedPrecondition
from cri.shim import client as shim
from cri.shim.errors import ShimError, ShimRequestError
from cri.shim.protocol import AttachRequest as ShimAttach
from cri.streaming.requests import AttachRequest, validate_streams

if TYPE_CHECKING:
    from cri.container.model import Container
    from cri.container.service import ContainerService


def check_attach(svc: ContainerService, request: AttachRequest) -> Container:
    validate_streams(request.tty, request.stdin, request.stdout, request.stderr)
    container = svc.get(request.container_id)
    if container.status.state != v1.CONTAINER_RUNNING:
        raise FailedPrecondition(f"container {container.id} is not running")
    if request.stdin and not container.config.stdin:
        raise FailedPrecondition(f"container {container.id} was not created with stdin")
    return container


def connect(svc: ContainerService, request: AttachRequest) -> tuple[socket.socket, bytes, bool]:
    """The attach stream's socket, the bytes that came with the shim's reply, and whether
    closing stdin should end the session (it should not when the container is stdin_once: its
    output after EOF is what the client waits for)."""
    container = check_attach(svc, request)
    try:
        sock, rest = shim.ShimClient(svc.task_dir(container.id)).attach(
            ShimAttach(stdin=request.stdin, stdout=request.stdout,
                       stderr=request.stderr and not container.config.tty))
    except ShimRequestError as exc:
        raise FailedPrecondition(f"attach to {container.id}: {exc}") from None
    except ShimError as exc:
        raise FailedPrecondition(f"container {container.id} has no running monitor: {exc}"
                                 ) from None
    return sock, rest, not container.config.stdin_once
