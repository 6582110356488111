"""Cgroup managers: one interface over cgroup v1 (and hybrid) and v2.

A manager is built either for a new container (`new_manager`, from the spec's cgroupsPath) or from
the paths recorded in state.json (`from_paths`, for exec/kill/delete in another process).
"""

from __future__ import annotations

from .detect import Layout, detect

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from .manager import CgroupManager


def __getattr__(name: str) -> Any:
    # NOTE: the Protocol needs typing (10 ms to import and tear down): loaded on first use only.
    if name == "CgroupManager":
        from .manager import CgroupManager

        return CgroupManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
