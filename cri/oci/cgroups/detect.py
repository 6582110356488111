"""Which cgroup layout the host has: v1, hybrid (v1 + an empty v2 at .../unified) or v2 only.

Read from /proc/self/mountinfo (the filesystem type of /sys/fs/cgroup and of each hierarchy),
which also tells the v1 hierarchies and their controllers, co-mounted ones included.
"""

from __future__ import annotations

from ..records import record

CGROUP_ROOT = "/sys/fs/cgroup"


@record
class Hierarchy:
    name: str  # directory name under /sys/fs/cgroup, e.g. "cpu,cpuacct" or "systemd"
    mountpoint: str
    controllers: frozenset[str]  # e.g. {"cpu", "cpuacct"}; {"name=systemd"} for named ones


@record
class Layout:
    mode: str  # "v1" | "hybrid" | "v2"
    hierarchies: tuple[Hierarchy, ...]
    unified: str | None


def parse(mountinfo: str, root: str = CGROUP_ROOT) -> Layout:
    hierarchies: list[Hierarchy] = []
    unified: str | None = None
    root_type = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        point, fstype, super_opts = (
            fields[4],
            fields[sep + 1],
            fields[sep + 3] if len(fields) > sep + 3 else "",
        )
        if point == root:
            root_type = fstype
        if fstype == "cgroup2" and (point == root or point.startswith(root + "/")):
            unified = point
        elif fstype == "cgroup" and point.startswith(root + "/"):
            ctrls = frozenset(
                o
                for o in super_opts.split(",")
                if o not in ("rw", "ro")
                and not o.startswith(
                    ("release_agent=", "clone_children", "xattr", "noprefix", "cpuset_v2_mode")
                )
            )
            hierarchies.append(Hierarchy(point.rsplit("/", 1)[1], point, ctrls))
    if root_type == "cgroup2":
        return Layout("v2", (), root)
    return Layout("hybrid" if unified else "v1", tuple(hierarchies), unified)


def detect() -> Layout:
    with open("/proc/self/mountinfo") as f:
        return parse(f.read())
