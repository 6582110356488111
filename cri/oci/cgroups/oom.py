"""Whether the OOM killer struck inside a cgroup: what turns exit code 137 into "OOMKilled"."""

from __future__ import annotations

import os

from .detect import Layout, detect


def _counter(path: str, key: str) -> int | None:
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        return None
    return None


def oom_kill_count(cgroup_path: str, layout: Layout | None = None) -> int | None:
    """OOM kills in the cgroup at `cgroup_path` (as in linux.cgroupsPath), or None if unknown.

    v1: `oom_kill` in memory.oom_control (kernel 4.13+); v2: `oom_kill` in memory.events.
    """
    layout = layout or detect()
    relative = cgroup_path.lstrip("/")
    if layout.mode == "v2":
        assert layout.unified is not None
        return _counter(os.path.join(layout.unified, relative, "memory.events"), "oom_kill")
    for hierarchy in layout.hierarchies:
        if "memory" in hierarchy.controllers:
            return _counter(os.path.join(hierarchy.mountpoint, relative, "memory.oom_control"),
                            "oom_kill")
    return None
