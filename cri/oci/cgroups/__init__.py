"""Cgroup managers: one interface over cgroup v1 (and hybrid) and v2.

A manager is built either for a new container (`new_manager`, from the spec's cgroupsPath) or from
the paths recorded in state.json (`from_paths`, for exec/kill/delete in another process).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from .detect import Layout
    from .manager import CgroupManager


def __getattr__(name: str) -> Any:
    # NOTE: loaded on first use: the Protocol needs typing (10 ms to import and tear down), and
    # the layout is create's alone (state, start, kill read the freezer through freezer.py).
    if name == "CgroupManager":
        from .manager import CgroupManager

        return CgroupManager
    if name == "Layout":
        from .detect import Layout

        return Layout
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
    if layout is None:
        from .detect import detect

        layout = detect()
    if layout.mode == "v2":
        from .v2 import V2Manager

        assert layout.unified is not None
        return V2Manager(layout.unified, path)
    from .v1 import V1Manager

    return V1Manager(layout.hierarchies, path, unified=layout.unified)


def from_paths(version: int, paths: Mapping[str, str]) -> CgroupManager:
    if version == 2:
        from .v2 import V2Manager

        return V2Manager.from_dir(paths[""])
    from .v1 import V1Manager

    return V1Manager.from_dirs(paths)


# NOTE: `detect` is cgroups.detect.detect: as a package attribute it would be shadowed by the
# submodule of that name once imported lazily.
__all__ = ["CgroupManager", "Layout", "from_paths", "new_manager", "resolve_path"]
