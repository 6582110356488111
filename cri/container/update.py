"""UpdateContainerResources: new cgroup limits for a created or running container (in-place pod
resize). The recorded spec is updated too, so that a later start or exec sees the new limits."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from cri.api.runtime.v1 import api_pb2 as v1
from cri.container.start import discard_early_task
from cri.errors import FailedPrecondition
from cri.spec.container import oci_resources

if TYPE_CHECKING:
    from cri.container.service import ContainerService

log = logging.getLogger(__name__)


def _merge(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def update_resources(svc: ContainerService, container_id: str,
                     resources: v1.LinuxContainerResources) -> None:
    container = svc.get(container_id)
    with svc.lock(container.id):
        container = svc.get(container.id)
        state = container.status.state
        if state not in (v1.CONTAINER_CREATED, v1.CONTAINER_RUNNING):
            raise FailedPrecondition(f"container {container.id} is "
                                     f"{v1.ContainerState.Name(state)}: nothing to update")
        wanted = oci_resources(resources)
        spec_file = svc.paths.container_state(container.id) / "config.json"
        spec = svc.oci_spec(container)
        if spec is None:
            raise FailedPrecondition(f"container {container.id} has no OCI spec on disk")
        if state == v1.CONTAINER_RUNNING:
            svc.runner(container).update(container.id, wanted)
        else:  # a task created early has the old limits: the start makes one with the new
            discard_early_task(svc, container)
        spec["linux"]["resources"] = _merge(spec["linux"].get("resources", {}), wanted)
        if resources.oom_score_adj:
            spec["process"]["oomScoreAdj"] = resources.oom_score_adj
        tmp = spec_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(spec))
        tmp.replace(spec_file)
    log.info("container %s resources updated", container.id)
