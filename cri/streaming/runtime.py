"""The three things the streaming server asks of the runtime, as seams: the server knows
protocols and connections, the runtime knows containers and pods."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from typing import Any, Protocol

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


class ClientGone(Exception):
    """The connection ended, or went idle past the timeout, before the session did."""


async def run_session(process: Process, pump_input: Coroutine[Any, Any, None],
                      pump_output: Coroutine[Any, Any, None]) -> tuple[bool, int | None]:
    """Drives a session's two directions until the process's output ends: (True, its exit
    code). If the client's side ends first, the process is aborted: (False, None). A failure of
    the input side other than the client going away is raised, after the abort."""
    input_task = asyncio.create_task(pump_input)
    output_task = asyncio.create_task(pump_output)
    failure: BaseException | None = None
    try:
        done, _ = await asyncio.wait({input_task, output_task},
                                     return_when=asyncio.FIRST_COMPLETED)
        if input_task in done and output_task not in done:
            output_task.cancel()
            await process.abort()
            failure = input_task.exception()
            if failure is None or isinstance(failure, ClientGone):
                return False, None
        else:
            output_task.result()
            return True, await process.wait()
    except BaseException:
        await process.abort()
        raise
    finally:
        input_task.cancel()
        output_task.cancel()
        await asyncio.gather(input_task, output_task, return_exceptions=True)
    raise failure
