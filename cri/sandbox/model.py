"""A pod sandbox as the daemon records it.

States (what PodSandboxStatus reports):

    (RunPodSandbox) --> READY --(StopPodSandbox, or the pause process dies)--> NOTREADY
                                                                   (RemovePodSandbox) --> gone

Metadata is written once, at RunPodSandbox. Status changes only by `SandboxStore.update_status`.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, replace
from typing import Any

from cri.api.runtime.v1 import api_pb2 as v1
from cri.store.table import Row

READY = "READY"
NOTREADY = "NOTREADY"


@dataclass(frozen=True, slots=True)
class SandboxStatus:
    state: str = NOTREADY
    pid: int = 0
    pid_start: int | None = None
    ips: tuple[str, ...] = ()  # from CNI: IPv4 first, then IPv6

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> SandboxStatus:
        data = dict(data)
        data["ips"] = tuple(data.get("ips", ()))
        return cls(**data)

    def stopped(self) -> SandboxStatus:
        return replace(self, state=NOTREADY)


@dataclass(frozen=True, slots=True)
class Sandbox:
    id: str
    name: str
    config: v1.PodSandboxConfig
    runtime_handler: str
    created_at: int  # unix ns
    netns_path: str  # "" with host network
    cgroups_path: str
    image_id: str
    image_layers: tuple[str, ...]  # chain ids under its rootfs: image removal keeps them
    status: SandboxStatus

    @property
    def pod_cgroup(self) -> str:
        """The cgroup the pause task and the pod's containers sit under (their parent)."""
        return self.cgroups_path.rsplit("/", 1)[0]

    def container_cgroups_path(self, container_id: str) -> str:
        return f"{self.pod_cgroup}/{container_id}"

    @property
    def host_network(self) -> bool:
        return self.config.linux.security_context.namespace_options.network == v1.NODE

    @property
    def host_ipc(self) -> bool:
        return self.config.linux.security_context.namespace_options.ipc == v1.NODE

    @property
    def host_pid(self) -> bool:
        return self.config.linux.security_context.namespace_options.pid == v1.NODE

    def metadata_json(self) -> dict[str, Any]:
        return {
            "config": base64.b64encode(self.config.SerializeToString()).decode(),
            "runtime_handler": self.runtime_handler,
            "created_at": self.created_at,
            "netns_path": self.netns_path,
            "cgroups_path": self.cgroups_path,
            "image_id": self.image_id,
            "image_layers": list(self.image_layers),
        }

    @classmethod
    def from_row(cls, row: Row) -> Sandbox:
        m = row.metadata
        return cls(
            id=row.id,
            name=row.name,
            config=v1.PodSandboxConfig.FromString(base64.b64decode(m["config"])),
            runtime_handler=m["runtime_handler"],
            created_at=m["created_at"],
            netns_path=m["netns_path"],
            cgroups_path=m["cgroups_path"],
            image_id=m["image_id"],
            image_layers=tuple(m.get("image_layers", ())),
            status=SandboxStatus.from_json(row.status),
        )


def sandbox_name(metadata: v1.PodSandboxMetadata) -> str:
    """The reserved name; the same pod attempt can exist only once (CRI-O's naming)."""
    return (f"k8s_POD_{metadata.name}_{metadata.namespace}_{metadata.uid}_"
            f"{metadata.attempt}")
