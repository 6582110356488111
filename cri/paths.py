"""Where everything lives on disk. One place, so a newcomer can find any file the daemon writes.

<root>  (persistent, --root, default /var/lib/cri)
  cri.db                      SQLite: images, sandboxes, containers
  images/                     content store and unpacked layers (cri.image)
  sandboxes/<id>/             hostname, hosts, resolv.conf; rootfs upper/work
  containers/<id>/            rootfs upper/work
  trash/                      what removals moved away, being deleted (cri.storage.trash)
<state> (runtime, --state, default /run/cri; a reboot empties it)
  cri.sock                    default gRPC socket
  oci/                        the in-tree executor's state (like runc --root)
  netns/<sandbox id>          pinned network namespaces
  sandboxes/<id>/             bundle (config.json, rootfs mount), shm mount, shim state
  containers/<id>/            bundle (config.json, rootfs mount), shim state, exec specs
  trash/                      as under <root>
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Paths:
    root: Path
    state: Path

    @property
    def database(self) -> Path:
        return self.root / "cri.db"

    @property
    def oci_root(self) -> Path:
        return self.state / "oci"

    def netns(self, sandbox_id: str) -> Path:
        return self.state / "netns" / sandbox_id

    def sandbox_data(self, sandbox_id: str) -> Path:
        return self.root / "sandboxes" / sandbox_id

    def sandbox_state(self, sandbox_id: str) -> Path:
        return self.state / "sandboxes" / sandbox_id

    def container_data(self, container_id: str) -> Path:
        return self.root / "containers" / container_id

    def container_state(self, container_id: str) -> Path:
        return self.state / "containers" / container_id
