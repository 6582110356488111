"""The freezer on fake cgroup trees: v1 freezer.state, v2 cgroup.freeze/cgroup.events, and the
paused status and pause/resume/kill derived from them."""

from __future__ import annotations

import importlib
import signal
from pathlib import Path

import pytest

from cri import oci
from cri.oci.cgroups import freezer
from cri.oci.cgroups.v1 import V1Manager
from cri.oci.cgroups.v2 import V2Manager
from cri.oci.state import Record
from tests.support.oci_records import save_live_record

# NOTE: `cri.oci.kill` is the function; the module is reached through sys.modules.
KILL = importlib.import_module("cri.oci.kill")


def _v1(tmp_path: Path, state: str = "THAWED") -> Path:
    d = tmp_path / "freezer" / "c1"
    d.mkdir(parents=True)
    (d / "freezer.state").write_text(state + "\n")
    (d / "cgroup.procs").write_text("")
    return d


def _v2(tmp_path: Path) -> Path:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("\n")
    d = tmp_path / "pod" / "c1"
    d.mkdir(parents=True)
    for level in (tmp_path / "pod", d):
        (level / "cgroup.controllers").write_text("cpu memory pids\n")
        (level / "cgroup.subtree_control").write_text("\n")
    (d / "cgroup.freeze").write_text("0\n")
    (d / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    (d / "cgroup.procs").write_text("")
    return d


def kernel_v2(path: str, value: str) -> None:
    """Writes as the kernel takes them: cgroup.freeze also flips "frozen" in cgroup.events."""
    Path(path).write_text(value)
    if path.endswith("cgroup.freeze"):
        Path(path).with_name("cgroup.events").write_text(f"populated 1\nfrozen {value}\n")


def test_v1_freeze_thaw(tmp_path: Path) -> None:
    d = _v1(tmp_path)
    m = V1Manager.from_dirs({"freezer": str(d), "memory": str(tmp_path / "memory")})
    assert m.freezer_state() == "THAWED"
    m.freeze()
    assert (d / "freezer.state").read_text() == "FROZEN" and m.freezer_state() == "FROZEN"
    # frozen through an ancestor only: not paused itself (freezer.self_freezing 0)
    (d / "freezer.self_freezing").write_text("0\n")
    assert m.freezer_state() == "THAWED"
    (d / "freezer.self_freezing").write_text("1\n")
    m.thaw()
    assert m.freezer_state() == "THAWED"
    assert V1Manager.from_dirs({"memory": str(d)}).freezer_state() is None


def test_v1_freeze_retries_freezing_and_thaws_now_and_then(tmp_path: Path) -> None:
    d = _v1(tmp_path)
    writes: list[str] = []

    def slow_kernel(path: str, value: str) -> None:
        writes.append(value)
        # FREEZING for the first 60 FROZEN writes, as with a workload that keeps forking
        frozen_writes = writes.count("FROZEN")
        Path(path).write_text("FREEZING" if value == "FROZEN" and frozen_writes < 60 else value)

    freezer.v1_freeze(str(d), slow_kernel, sleep=lambda _: None)
    assert (d / "freezer.state").read_text() == "FROZEN"
    assert writes.count("THAWED") == 1  # the 50th round thaws once, then tries again


def test_v1_gives_up_thawed(tmp_path: Path) -> None:
    d = _v1(tmp_path)

    def stuck(path: str, value: str) -> None:
        Path(path).write_text("FREEZING" if value == "FROZEN" else value)

    with pytest.raises(freezer.FreezeFailed, match="stuck in FREEZING"):
        freezer.v1_freeze(str(d), stuck, sleep=lambda _: None)
    assert (d / "freezer.state").read_text() == "THAWED"


def test_v2_freeze_waits_for_events(tmp_path: Path) -> None:
    d = _v2(tmp_path)
    m = V2Manager.from_dir(str(d), write=kernel_v2)
    assert m.paths == {"": str(d)}
    assert m.freezer_state() == "THAWED"
    m.freeze()
    assert (d / "cgroup.freeze").read_text() == "1" and m.freezer_state() == "FROZEN"
    m.thaw()
    assert m.freezer_state() == "THAWED"
    # asked, not reached yet
    (d / "cgroup.freeze").write_text("1\n")
    assert m.freezer_state() == "FREEZING"


def test_v2_freeze_timeout_leaves_it_thawed(tmp_path: Path) -> None:
    d = _v2(tmp_path)
    naps: list[float] = []
    with pytest.raises(freezer.FreezeFailed, match="waiting for .* to freeze"):
        freezer.v2_freeze(str(d), _plain_write, sleep=naps.append)
    assert (d / "cgroup.freeze").read_text() == "0"
    assert len(naps) == freezer.ROUNDS


def _plain_write(path: str, value: str) -> None:
    Path(path).write_text(value)


def test_v2_without_freezer(tmp_path: Path) -> None:
    d = _v2(tmp_path)
    (d / "cgroup.freeze").unlink()
    m = V2Manager.from_dir(str(d))
    assert m.freezer_state() is None
    with pytest.raises(freezer.FreezeFailed, match="not supported"):
        m.freeze()
    m.thaw()  # nothing to thaw


def _record(root: Path, paths: dict[str, str], version: int = 1) -> Record:
    """A record whose "init" is this test process (alive, with its real start time)."""
    return save_live_record(root, cgroup_version=version, cgroup_paths=paths)


def test_pause_resume_and_status_on_a_fake_tree(tmp_path: Path) -> None:
    d = _v1(tmp_path)
    root = tmp_path / "state"
    _record(root, {"freezer": str(d)})
    assert oci.state(root, "c1").status is oci.Status.RUNNING
    with pytest.raises(oci.InvalidState, match="not paused"):
        oci.resume(root, "c1")
    oci.pause(root, "c1")
    assert oci.state(root, "c1").status is oci.Status.PAUSED
    assert oci.state(root, "c1").to_json()["status"] == "paused"
    with pytest.raises(oci.InvalidState, match="not running or created: paused"):
        oci.pause(root, "c1")
    with pytest.raises(oci.InvalidState):
        oci.exec_process(root, "c1", {"args": ["true"]}, stdin=None, stdout=None, stderr=None)
    with pytest.raises(oci.InvalidState):
        oci.start(root, "c1")
    oci.resume(root, "c1")
    assert oci.state(root, "c1").status is oci.Status.RUNNING
    # created (exec.fifo present) can be paused too, and resumes to created
    (root / "c1" / "exec.fifo").write_text("")
    oci.pause(root, "c1")
    assert oci.state(root, "c1").status is oci.Status.PAUSED
    oci.resume(root, "c1")
    assert oci.state(root, "c1").status is oci.Status.CREATED


def test_kill_of_paused_thaws_after_sigkill_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _v1(tmp_path, "FROZEN")
    root = tmp_path / "state"
    _record(root, {"freezer": str(d)})
    sent: list[int] = []

    def signal_init(record: Record, sig: int) -> bool:
        sent.append(sig)
        return True

    monkeypatch.setattr(KILL, "signal_init", signal_init)
    oci.kill(root, "c1", signal.SIGTERM)
    assert (d / "freezer.state").read_text().strip() == "FROZEN"
    oci.kill(root, "c1", signal.SIGKILL)
    assert sent == [signal.SIGTERM, signal.SIGKILL]
    assert (d / "freezer.state").read_text() == "THAWED"


def test_kill_all_freezes_around_the_signals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _v1(tmp_path)
    root = tmp_path / "state"
    _record(root, {"freezer": str(d)})
    seen: list[str] = []

    def signal_all(record: Record, sig: int) -> None:
        seen.append((d / "freezer.state").read_text())

    monkeypatch.setattr(KILL, "signal_all", signal_all)
    monkeypatch.setattr(KILL, "signal_init", lambda record, sig: True)
    oci.kill(root, "c1", signal.SIGUSR1, all=True)
    assert seen == ["FROZEN"]
    assert (d / "freezer.state").read_text() == "THAWED"
