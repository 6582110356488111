"""state.brief: what the compiled front end reads, and when there is none."""

from __future__ import annotations

from pathlib import Path

from cri.oci.records import replace
from cri.oci.statefile import Record, brief, save

V1 = Record(
    id="c1",
    pid=42,
    pid_start=1234,
    bundle="/b",
    rootfs="/b/rootfs",
    created="2026-11-25T00:00:00Z",
    cgroup_version=1,
    cgroup_paths={
        "cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/x",
        "freezer": "/sys/fs/cgroup/freezer/x",
        "pids": "/sys/fs/cgroup/pids/x",
    },
)


def test_v1_lists_every_cgroup_and_the_freezer() -> None:
    assert brief(V1) == (
        "pid 42\npid_start 1234\ncgroup_version 1\nfreezer /sys/fs/cgroup/freezer/x\n"
        "cgroup /sys/fs/cgroup/cpu,cpuacct/x\ncgroup /sys/fs/cgroup/freezer/x\n"
        "cgroup /sys/fs/cgroup/pids/x\n"
    )


def test_v2_freezer_is_the_one_dir() -> None:
    record = replace(V1, cgroup_version=2, cgroup_paths={"": "/sys/fs/cgroup/x"})
    assert brief(record) == (
        "pid 42\npid_start 1234\ncgroup_version 2\nfreezer /sys/fs/cgroup/x\n"
        "cgroup /sys/fs/cgroup/x\n"
    )


def test_none_where_python_must_act() -> None:
    hook = [{"path": "/bin/true"}]
    assert brief(replace(V1, hooks={"poststart": hook})) is None
    assert brief(replace(V1, hooks={"poststop": hook})) is None
    assert brief(replace(V1, hooks={"prestart": hook})) is not None  # create's, done by then
    assert brief(replace(V1, rootfs_mount_id=7)) is None
    assert brief(replace(V1, cgroup_paths={"pids": "/sys/fs/cgroup/pids/a\nb"})) is None


def test_save_writes_both_or_only_state_json(tmp_path: Path) -> None:
    (tmp_path / "c1").mkdir()
    save(tmp_path, V1)
    assert sorted(p.name for p in (tmp_path / "c1").iterdir()) == ["state.brief", "state.json"]
    (tmp_path / "c1" / "state.brief").unlink()
    save(tmp_path, replace(V1, rootfs_mount_id=7))
    assert sorted(p.name for p in (tmp_path / "c1").iterdir()) == ["state.json"]
