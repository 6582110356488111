"""ExecSync: run a command in a running container and return its output and exit code."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cri.api.runtime.v1 import api_pb2 as v1
from cri.errors import FailedPrecondition, InvalidArgument
from cri.task import ExecResult

if TYPE_CHECKING:
    from cri.container.service import ContainerService


def exec_sync(svc: ContainerService, container_id: str, cmd: Sequence[str],
              timeout: float) -> ExecResult:
    if not cmd:
        raise InvalidArgument("exec needs a command")
    container = svc.get(container_id)
    if container.status.state != v1.CONTAINER_RUNNING:
        raise FailedPrecondition(f"container {container.id} is not running")
    state_dir = svc.paths.container_state(container.id)
    spec = svc.oci_spec(container)
    if spec is None:
        raise FailedPrecondition(f"container {container.id} has no OCI spec on disk")
    process = dict(spec["process"])
    process["args"] = list(cmd)
    process["terminal"] = False
    process_file = state_dir / f"exec-{secrets.token_hex(8)}.json"
    process_file.write_text(json.dumps(process))
    try:
        return svc.runner(container).exec_sync(container.id, process_file, timeout)
    finally:
        process_file.unlink(missing_ok=True)
