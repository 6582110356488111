"""Cgroup managers: one interface over cgroup v1 (and hybrid) and v2.

A manager is built either for a new container (`new_manager`, from the spec's cgroupsPath) or from
the paths recorded in state.json (`from_paths`, for exec/kill/delete in another process).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .detect import Layout, detect


class CgroupManager(Protocol):
    version: int

    @property
    def paths(self) -> dict[str, str]:
        """Hierarchy name ("" for v2) -> absolute directory of the container's cgroup."""
        ...

    def create(self, resources: Mapping[str, Any]) -> None: ...
    def add(self, pid: int) -> None:
        """Move pid (0: the calling process) into the cgroup in every hierarchy."""
        ...

    def apply(self, resources: Mapping[str, Any]) -> None: ...
    def update(self, resources: Mapping[str, Any]) -> None:
        """New limits on a live cgroup (`update`): everything but devices."""
        ...

    def destroy(self) -> None: ...
    def pids(self) -> list[int]: ...
    def freezer_state(self) -> str | None:
        """freezer.FROZEN, FREEZING or THAWED; None without a freezer."""
        ...

    def freeze(self) -> None:
        """Freeze every process and wait until they are; FreezeFailed otherwise (thawed)."""
        ...

    def thaw(self) -> None: ...


DEFAULT_PARENT = "/cri-oci"


def resolve_path(cgroups_path: str | None, container_id: str) -> str:
    """linux.cgroupsPath, or /cri-oci/<id>. A relative path is taken from the hierarchy root.

    NOTE: runc takes a relative path from its own cgroup; the daemon always passes absolute paths,
    and the root is more predictable for a runtime started from arbitrary shims.
    """
    if not cgroups_path:
        return f"{DEFAULT_PARENT}/{container_id}"
    return cgroups_path if cgroups_path.startswith("/") else "/" + cgroups_path


def new_manager(path: str, layout: Layout | None = None) -> CgroupManager:
    layout = layout or detect()
    if layout.mode == "v2":
        from .v2 import V2Manager

        assert layout.unified is not None
        return V2Manager(layout.unified, path)
    from .v1 import V1Manager

    return V1Manager(layout.hierarchies, path)


def from_paths(version: int, paths: Mapping[str, str]) -> CgroupManager:
    if version == 2:
        from .v2 import V2Manager

        return V2Manager.from_dir(paths[""])
    from .v1 import V1Manager

    return V1Manager.from_dirs(paths)


__all__ = ["CgroupManager", "Layout", "detect", "from_paths", "new_manager", "resolve_path"]
