"""cgroup v1/v2 writes on fake /sys/fs/cgroup trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cri.oci.cgroups import from_paths, resolve_path
from cri.oci.cgroups.detect import Hierarchy, Layout, parse
from cri.oci.cgroups.v1 import V1Manager
from cri.oci.cgroups.v2 import V2Manager, shares_to_weight

HYBRID = """\
25 18 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
27 25 0:24 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
"""


def test_detect_layouts() -> None:
    layout = parse(HYBRID)
    assert layout.mode == "hybrid" and layout.unified == "/sys/fs/cgroup/unified"
    assert [h.name for h in layout.hierarchies] == ["systemd", "cpu,cpuacct", "memory"]
    assert layout.hierarchies[1].controllers == {"cpu", "cpuacct"}
    assert layout.hierarchies[0].controllers == {"name=systemd"}
    assert parse("25 18 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n").mode == "v2"
    assert (
        parse(
            HYBRID.replace("26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n", "")
        ).mode
        == "v1"
    )


def test_resolve_path() -> None:
    assert resolve_path(None, "abc") == "/cri-oci/abc"
    assert resolve_path("/kubepods/pod1/c1", "c1") == "/kubepods/pod1/c1"
    assert resolve_path("kubepods/c1", "c1") == "/kubepods/c1"


@pytest.fixture
def v1_tree(tmp_path: Path) -> list[Hierarchy]:
    hier = []
    for name in ("cpu,cpuacct", "cpuset", "memory", "pids", "devices", "systemd"):
        (tmp_path / name).mkdir()
        ctrls = frozenset({"name=systemd"} if name == "systemd" else name.split(","))
        hier.append(Hierarchy(name, str(tmp_path / name), ctrls))
    (tmp_path / "cpuset" / "cpuset.cpus").write_text("0-3\n")
    (tmp_path / "cpuset" / "cpuset.mems").write_text("0\n")
    return hier


def test_v1_create_writes_limits(tmp_path: Path, v1_tree: list[Hierarchy]) -> None:
    writes: list[tuple[str, str]] = []

    def write(path: str, value: str) -> None:
        writes.append((path.removeprefix(str(tmp_path)), value))
        Path(path).write_text(value)

    m = V1Manager(v1_tree, "/cri/c1", write=write)
    m.create(
        {
            "memory": {"limit": 1 << 26, "reservation": 1 << 25, "swappiness": 10},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "1"},
            "pids": {"limit": 0},
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": True, "type": "c", "major": 136, "access": "rwm"},
            ],
        }
    )
    assert ("/cpuset/cri/cpuset.cpus", "0-3") in writes  # inherited down from the root
    assert ("/cpuset/cri/c1/cpuset.mems", "0") in writes
    assert writes.index(("/cpuset/cri/cpuset.cpus", "0-3")) < writes.index(
        ("/cpuset/cri/c1/cpuset.cpus", "0-3")
    )
    assert (tmp_path / "cpuset/cri/c1/cpuset.cpus").read_text() == "1"  # then the spec's value
    assert ("/memory/cri/c1/memory.limit_in_bytes", str(1 << 26)) in writes
    assert ("/memory/cri/c1/memory.soft_limit_in_bytes", str(1 << 25)) in writes
    assert ("/memory/cri/c1/memory.swappiness", "10") in writes
    assert ("/cpu,cpuacct/cri/c1/cpu.shares", "512") in writes
    assert writes.index(("/cpu,cpuacct/cri/c1/cpu.cfs_period_us", "100000")) < writes.index(
        ("/cpu,cpuacct/cri/c1/cpu.cfs_quota_us", "50000")
    )
    assert ("/pids/cri/c1/pids.max", "max") in writes
    dev = [v for p, v in writes if p.startswith("/devices/")]
    assert dev == ["a", "c 1:3 rwm", "c 136:* rwm"]
    assert [p for p, _ in writes if p.endswith("devices.deny")] == ["/devices/cri/c1/devices.deny"]
    assert (tmp_path / "systemd" / "cri" / "c1").is_dir()

    m.add(1234)
    assert (tmp_path / "memory/cri/c1/cgroup.procs").read_text() == "1234"
    assert m.paths["memory"] == str(tmp_path / "memory/cri/c1")
    again = from_paths(1, m.paths)
    assert again.pids() == [1234]


def test_v1_swap_order_when_growing(tmp_path: Path, v1_tree: list[Hierarchy]) -> None:
    (tmp_path / "memory" / "c").mkdir()
    (tmp_path / "memory" / "c" / "memory.memsw.limit_in_bytes").write_text("0")
    writes: list[str] = []
    m = V1Manager(v1_tree, "/c", write=lambda p, v: writes.append(p.rsplit("/", 1)[1]))
    m.apply({"memory": {"limit": 100, "swap": 200}})
    assert writes == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]


@pytest.fixture
def v2_tree(tmp_path: Path) -> Path:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("\n")
    (tmp_path / "kubepods").mkdir()
    (tmp_path / "kubepods" / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "kubepods" / "cgroup.subtree_control").write_text("memory\n")
    return tmp_path


def test_v2_create_enables_controllers_and_writes(v2_tree: Path) -> None:
    writes: list[tuple[str, str]] = []

    def write(path: str, value: str) -> None:
        writes.append((path.removeprefix(str(v2_tree)), value))
        Path(path).write_text(value)

    m = V2Manager(str(v2_tree), "/kubepods/c1", write=write)
    m.create(
        {
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1"},
            "memory": {"limit": 1000, "swap": 3000, "reservation": 500},
            "pids": {"limit": 10},
            "unified": {"memory.high": "900"},
        }
    )
    assert writes[0] == ("/cgroup.subtree_control", "+cpu +cpuset +memory +pids")
    # kubepods offers no cpuset; memory is already on
    assert writes[1] == ("/kubepods/cgroup.subtree_control", "+cpu +pids")
    rest = dict(writes[2:])
    assert rest["/kubepods/c1/cpu.weight"] == str(shares_to_weight(1024)) == "39"
    assert rest["/kubepods/c1/cpu.max"] == "50000 100000"
    assert rest["/kubepods/c1/memory.max"] == "1000"
    assert rest["/kubepods/c1/memory.swap.max"] == "2000"
    assert rest["/kubepods/c1/memory.low"] == "500"
    assert rest["/kubepods/c1/pids.max"] == "10"
    assert rest["/kubepods/c1/memory.high"] == "900"
    assert m.paths == {"": str(v2_tree / "kubepods" / "c1")}


def test_v2_unlimited_values(v2_tree: Path) -> None:
    writes: dict[str, str] = {}
    m = V2Manager(str(v2_tree), "/x", write=lambda p, v: writes.__setitem__(p.rsplit("/", 1)[1], v))
    m.apply(
        {
            "cpu": {"quota": -1, "period": 100000},
            "memory": {"limit": -1, "swap": -1},
            "pids": {"limit": -1},
        }
    )
    assert writes == {
        "cpu.max": "max 100000",
        "memory.max": "max",
        "memory.swap.max": "max",
        "pids.max": "max",
    }
    assert shares_to_weight(2) == 1 and shares_to_weight(262144) == 10000


def test_manager_factory_uses_layout(tmp_path: Path) -> None:
    from cri.oci.cgroups import new_manager

    assert new_manager("/a", Layout("v2", (), str(tmp_path))).version == 2
    assert new_manager("/a", Layout("hybrid", (), "/u")).version == 1


def test_v1_self_join_goes_through_tasks_when_single_threaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """add(0) from a single-threaded process moves its one thread (`tasks`): the kernel then
    skips the threadgroup rwsem and its grace period; otherwise, and for other pids,
    cgroup.procs."""
    from cri.oci.cgroups import v1

    dirs = {"memory": str(tmp_path / "memory"), "cpu,cpuacct": str(tmp_path / "cpu")}
    for d in dirs.values():
        os.makedirs(d)
    m = from_paths(1, dirs)
    monkeypatch.setattr(v1, "_single_threaded", lambda: True)
    m.add(0)
    assert sorted(os.listdir(tmp_path / "cpu")) == ["tasks"]
    assert (tmp_path / "memory/tasks").read_text() == "0"
    monkeypatch.setattr(v1, "_single_threaded", lambda: False)
    m.add(0)
    assert (tmp_path / "memory/cgroup.procs").read_text() == "0"
    m.add(42)
    assert (tmp_path / "cpu/cgroup.procs").read_text() == "42"
