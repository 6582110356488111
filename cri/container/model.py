"""A container as the daemon records it.

States (ContainerStatus.state), derived from the status timestamps:

    (CreateContainer) --> CREATED --(StartContainer)--> RUNNING --(exit / StopContainer)--> EXITED
                             |                                                               |
                             +----------------(RemoveContainer)----> gone <------------------+

A failed start records finished_at and the error, so the container shows as EXITED.
Metadata is written once, at CreateContainer; status changes only by `ContainerStore.update_status`.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass
from typing import Any

from cri.api.runtime.v1 import api_pb2 as v1
from cri.store.table import Row


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    started_at: int = 0  # unix ns; 0 = never started
    finished_at: int = 0
    exit_code: int = 0
    pid: int = 0
    pid_start: int | None = None
    reason: str = ""
    message: str = ""

    @property
    def state(self) -> v1.ContainerState:
        if self.finished_at:
            return v1.CONTAINER_EXITED
        if self.started_at:
            return v1.CONTAINER_RUNNING
        return v1.CONTAINER_CREATED

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> ContainerStatus:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Container:
    id: str
    name: str
    sandbox_id: str
    config: v1.ContainerConfig
    image_ref: str  # what the user asked for
    image_id: str  # what it resolved to
    image_layers: tuple[str, ...]  # chain ids under its rootfs: image removal keeps them
    created_at: int
    log_path: str  # absolute; "" when kubelet gave none
    runtime_handler: str
    status: ContainerStatus

    def metadata_json(self) -> dict[str, Any]:
        return {
            "config": base64.b64encode(self.config.SerializeToString()).decode(),
            "image_ref": self.image_ref,
            "image_id": self.image_id,
            "image_layers": list(self.image_layers),
            "created_at": self.created_at,
            "log_path": self.log_path,
            "runtime_handler": self.runtime_handler,
        }

    @classmethod
    def from_row(cls, row: Row) -> Container:
        m = row.metadata
        return cls(
            id=row.id,
            name=row.name,
            sandbox_id=row.parent,
            config=v1.ContainerConfig.FromString(base64.b64decode(m["config"])),
            image_ref=m["image_ref"],
            image_id=m["image_id"],
            image_layers=tuple(m.get("image_layers", ())),
            created_at=m["created_at"],
            log_path=m["log_path"],
            runtime_handler=m["runtime_handler"],
            status=ContainerStatus.from_json(row.status),
        )


def container_name(container: v1.ContainerMetadata, pod: v1.PodSandboxMetadata) -> str:
    return (f"k8s_{container.name}_{pod.name}_{pod.namespace}_{pod.uid}_"
            f"{container.attempt}")
