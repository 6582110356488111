"""update: merging requests into recorded resources, runc's flags, and live writes on fake trees."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cri import oci
from cri.oci.cgroups.v1 import V1Manager
from cri.oci.cgroups.v2 import V2Manager
from cri.oci.errors import InvalidSpec, Unsupported
from cri.oci.update import merge, ram_in_bytes, resources_from_flags
from tests.support.oci_records import save_live_record

CURRENT = {
    "memory": {"limit": 100, "swap": 200},
    "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-3"},
    "pids": {"limit": 10},
    "devices": [{"allow": False, "access": "rwm"}],
    "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
    "unified": {"memory.high": "90"},
}


def test_merge_keeps_what_the_request_leaves_unset() -> None:
    merged = merge(
        CURRENT,
        {
            "memory": {"limit": 300, "swap": 0, "reservation": None},  # 0/null: unset (runc)
            "cpu": {"shares": 0, "cpus": "", "mems": "0"},
            "pids": {"limit": 0},
            "hugepageLimits": [{"pageSize": "1GB", "limit": 1 << 30}],
            "unified": {"memory.max": "500"},
        },
    )
    assert merged["memory"] == {"limit": 300, "swap": 200}
    assert merged["cpu"] == {
        "shares": 1024,
        "quota": 50000,
        "period": 100000,
        "cpus": "0-3",
        "mems": "0",
    }
    assert merged["pids"] == {"limit": 10}
    assert merged["devices"] == CURRENT["devices"]  # never changed by update
    assert merged["hugepageLimits"] == [
        {"pageSize": "2MB", "limit": 0},
        {"pageSize": "1GB", "limit": 1 << 30},
    ]
    assert merged["unified"] == {"memory.high": "90", "memory.max": "500"}
    assert CURRENT["memory"] == {"limit": 100, "swap": 200}  # not modified in place


def test_unlimited_memory_without_swap_means_unlimited_swap() -> None:
    assert merge(CURRENT, {"memory": {"limit": -1}})["memory"] == {"limit": -1, "swap": -1}
    assert merge({}, {"memory": {"limit": -1, "swap": 500}})["memory"] == {"limit": -1, "swap": 500}


@pytest.mark.parametrize(
    "request_",
    [
        {"memory": {"limit": "100"}},
        {"memory": {"limit": True}},
        {"cpu": "x"},
        {"cpu": {"cpus": 3}},
        {"hugepageLimits": [{"limit": 1}]},
        {"unified": {"memory.high": 5}},
    ],
)
def test_merge_rejects_bad_types(request_: dict[str, object]) -> None:
    with pytest.raises(InvalidSpec):
        merge(CURRENT, request_)


def test_ram_in_bytes_like_go_units() -> None:
    assert ram_in_bytes("1024") == 1024
    assert ram_in_bytes("64m") == ram_in_bytes("64MB") == ram_in_bytes("64MiB") == 64 << 20
    assert ram_in_bytes("1.5g") == 3 << 29
    assert ram_in_bytes("2 KiB") == 2048
    with pytest.raises(InvalidSpec):
        ram_in_bytes("lots")


def test_runc_flags() -> None:
    assert resources_from_flags(
        {
            "memory": "128m",
            "memory-swap": "-1",
            "memory-reservation": "64m",
            "cpu-shares": "512",
            "cpu-quota": "-1",
            "cpu-period": "100000",
            "cpuset-cpus": "0,1",
            "cpuset-mems": "0",
            "pids-limit": "50",
            "blkio-weight": "300",
            "kernel-memory": "1g",  # ignored, as by runc
        }
    ) == {
        "memory": {"limit": 128 << 20, "swap": -1, "reservation": 64 << 20},
        "cpu": {"shares": 512, "quota": -1, "period": 100000, "cpus": "0,1", "mems": "0"},
        "pids": {"limit": 50},
        "blockIO": {"weight": 300},
    }
    assert resources_from_flags({"cpu-share": "2"}) == {"cpu": {"shares": 2}}
    with pytest.raises(InvalidSpec, match="cpu-quota"):
        resources_from_flags({"cpu-quota": "lots"})
    with pytest.raises(Unsupported, match="RDT"):
        resources_from_flags({"l3-cache-schema": "L3:0=f"})


def _v1_tree(tmp_path: Path, limit: int, memsw: int) -> dict[str, str]:
    dirs = {}
    for name in ("memory", "cpu,cpuacct", "pids", "devices"):
        d = tmp_path / name / "c1"
        d.mkdir(parents=True)
        dirs[name] = str(d)
    (tmp_path / "memory/c1/memory.limit_in_bytes").write_text(f"{limit}\n")
    (tmp_path / "memory/c1/memory.memsw.limit_in_bytes").write_text(f"{memsw}\n")
    return dirs


@pytest.mark.parametrize(
    ("current", "new", "order"),
    [
        ((100, 200), (300, 400), ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]),
        ((300, 400), (100, 200), ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]),
        ((100, 200), (-1, -1), ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]),
    ],
)
def test_v1_update_orders_memory_writes_by_the_current_limit(
    tmp_path: Path, current: tuple[int, int], new: tuple[int, int], order: list[str]
) -> None:
    """The kernel keeps memsw >= limit at every write; a wrong order fails with EINVAL."""
    dirs = _v1_tree(tmp_path, *current)
    writes: list[tuple[str, str]] = []

    def kernel(path: str, value: str) -> None:
        writes.append((os.path.basename(path), value))
        Path(path).write_text(value)

    m = V1Manager.from_dirs(dirs, write=kernel)
    m.update({"memory": {"limit": new[0], "swap": new[1]}, "devices": [{"allow": False}]})
    assert [name for name, _ in writes] == order
    assert not any("devices" in name for name, _ in writes)
    with pytest.raises(Unsupported, match="cgroup v2"):
        m.update({"unified": {"memory.high": "1"}})


def test_v2_update_enables_newly_needed_controllers(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("memory\n")
    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / "cgroup.controllers").write_text("memory\n")
    writes: dict[str, str] = {}

    def kernel(path: str, value: str) -> None:
        writes[os.path.relpath(path, tmp_path)] = value
        Path(path).write_text(value)

    m = V2Manager.from_dir(str(tmp_path / "c1"), write=kernel)
    m.update({"pids": {"limit": 9}, "memory": {"limit": 100, "swap": 300}, "devices": [{}]})
    assert writes == {
        "cgroup.subtree_control": "+pids",
        "c1/pids.max": "9",
        "c1/memory.max": "100",
        "c1/memory.swap.max": "200",
    }


def test_library_update_records_the_merged_resources(tmp_path: Path) -> None:
    dirs = _v1_tree(tmp_path, 100, 200)
    root = tmp_path / "state"
    save_live_record(
        root,
        cgroup_paths=dirs,
        resources={"memory": {"limit": 100, "swap": 200}, "pids": {"limit": 10}},
    )
    merged = oci.update(root, "c1", {"pids": {"limit": 20}, "memory": {"limit": 150}})
    assert merged == {"memory": {"limit": 150, "swap": 200}, "pids": {"limit": 20}}
    assert json.loads((root / "c1" / "state.json").read_text())["resources"] == merged
    assert (tmp_path / "pids/c1/pids.max").read_text() == "20"
    assert (tmp_path / "memory/c1/memory.limit_in_bytes").read_text() == "150"
    # a stopped container (the "init" is gone) cannot be updated
    record = json.loads((root / "c1" / "state.json").read_text())
    record["pid_start"] += 1
    (root / "c1" / "state.json").write_text(json.dumps(record))
    with pytest.raises(oci.InvalidState, match="stopped"):
        oci.update(root, "c1", {"pids": {"limit": 30}})
