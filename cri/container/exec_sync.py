"""ExecSync: run a command in a running container and return its output and exit code."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cri.api.runtime.v1 import api_pb2 as v1
from cri.errors import FailedPrecondition, InvalidArgument
from cri.task import ExecResult

if TYPE_CHECKING:
    from cri.container.model import Container
    from cri.container.service import ContainerService


def exec_sync(svc: ContainerService, container_id: str, cmd: Sequence[str],
              timeout: float) -> ExecResult:
    container = running_container(svc, container_id, cmd)
    process_file = write_process_file(svc, container, cmd, tty=False)
    try:
        return svc.runner(container).exec_sync(container.id, process_file, timeout)
    finally:
        process_file.unlink(missing_ok=True)


def running_container(svc: ContainerService, container_id: str,
                      cmd: Sequence[str]) -> Container:
    if not cmd:
        raise InvalidArgument("exec needs a command")
    container = svc.get(container_id)
    if container.status.state != v1.CONTAINER_RUNNING:
        raise FailedPrecondition(f"container {container.id} is not running")
    return container


def write_process_file(svc: ContainerService, container: Container, cmd: Sequence[str], *,
                       tty: bool) -> Path:
    """The OCI process for an exec: the container's own (user, env, cwd, capabilities...) with
    `cmd` instead of its args. The caller removes the file."""
    spec = svc.oci_spec(container)
    if spec is None:
        raise FailedPrecondition(f"container {container.id} has no OCI spec on disk")
    process = dict(spec["process"])
    process["args"] = list(cmd)
    process["terminal"] = tty
    process.pop("consoleSize", None)
    process_file = svc.paths.container_state(container.id) / f"exec-{secrets.token_hex(8)}.json"
    process_file.write_text(json.dumps(process))
    return process_file
