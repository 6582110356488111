"""The three things the streaming server asks of the runtime, as seams: the server knows
protocols and connections, the runtime knows containers and pods."""

from __future__ import annotations

import socket
from typing import Protocol

from cri.streaming.remotecommand import Channel
from cri.streaming.requests import AttachRequest, ExecRequest


class Process(Protocol):
    """An exec'd command, or an attachment to a container's main process."""

    async def output(self) -> tuple[Channel, bytes] | None:
        """The next chunk of stdout or stderr; None once all output has ended."""

    async def write_stdin(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    def resize(self, width: int, height: int) -> None: ...

    async def wait(self) -> int | None:
        """The exit code once output has ended (an exec), or None (an attach)."""

    async def abort(self) -> None:
        """The client went away: an exec'd command is killed, an attachment detaches."""


class Runtime(Protocol):
    async def exec(self, request: ExecRequest) -> Process: ...

    async def attach(self, request: AttachRequest) -> Process: ...

    async def dial(self, pod_sandbox_id: str, port: int) -> socket.socket:
        """A TCP connection to `port` on localhost inside the pod's network namespace."""
