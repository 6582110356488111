"""pause/resume and update on live containers, under our executor and runc (the oracle)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RUNC, needs_root, ours_cli, runc

from cri import oci

pytestmark = needs_root
REPO = Path(__file__).resolve().parents[3]
CGROUP = Path("/sys/fs/cgroup")


def _cli(root: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(
        [*ours_cli(), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        **kw,
    )


class Pair:
    """The same container under both runtimes, each in its own cgroup."""

    def __init__(self, tmp_path: Path, cid: str) -> None:
        self.cid = cid
        self.roots = {"ours": tmp_path / "ours", "runc": tmp_path / "runc"}
        self.cgroups = {"ours": f"/cri-test-oci/{cid}", "runc": f"/cri-test-oci/{cid}-runc"}
        self.pid = 0

    def cli(self, who: str, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        if who == "ours":
            return _cli(self.roots["ours"], *args, **kw)
        p: subprocess.CompletedProcess[str] = runc(self.roots["runc"], *args, check=False, **kw)
        return p

    def status(self, who: str) -> str:
        p = self.cli(who, "state", self.cid)
        assert p.returncode == 0, p.stderr
        status: str = json.loads(p.stdout)["status"]
        return status

    def file(self, who: str, controller: str, name: str) -> str:
        return (CGROUP / controller / self.cgroups[who].lstrip("/") / name).read_text().strip()


@pytest.fixture
def pair(make_bundle: Callable[..., Path], tmp_path: Path, cid: str) -> Iterator[Pair]:
    p = Pair(tmp_path, cid)

    def bundle(who: str) -> Path:
        def edit(spec: dict[str, Any]) -> None:
            spec["linux"]["cgroupsPath"] = p.cgroups[who]
            spec["linux"]["resources"] = {
                "devices": [{"allow": False, "access": "rwm"}],
                "memory": {"limit": 64 << 20, "swap": 128 << 20},
                "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
                "pids": {"limit": 100},
            }

        return make_bundle(["sleep", "1000"], edit)

    try:
        p.pid = oci.create(p.roots["ours"], cid, bundle("ours"))
        oci.start(p.roots["ours"], cid)
        subprocess.run(
            [
                RUNC,
                "--root",
                str(p.roots["runc"]),
                "run",
                "-d",
                "--bundle",
                str(bundle("runc")),
                cid,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=60,
        )
        yield p
    finally:
        with contextlib.suppress(oci.ContainerNotFound):
            oci.delete(p.roots["ours"], cid, force=True)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(p.pid, 0)
        runc(p.roots["runc"], "delete", "--force", cid, check=False)


def _wait_status(pair: Pair, who: str, status: str) -> None:
    for _ in range(200):
        if pair.status(who) == status:
            return
        time.sleep(0.05)
    assert pair.status(who) == status


def test_pause_resume_matches_runc(pair: Pair) -> None:
    for who in ("ours", "runc"):
        assert pair.status(who) == "running"
        assert pair.cli(who, "pause", pair.cid).returncode == 0
        assert pair.status(who) == "paused"
        assert pair.file(who, "freezer", "freezer.state") == "FROZEN"
        # what a paused container refuses, under both
        assert pair.cli(who, "pause", pair.cid).returncode != 0
        assert pair.cli(who, "exec", pair.cid, "true").returncode != 0
        assert pair.cli(who, "delete", pair.cid).returncode != 0
        assert pair.cli(who, "resume", pair.cid).returncode == 0
        assert pair.status(who) == "running"
        assert pair.file(who, "freezer", "freezer.state") == "THAWED"
        assert pair.cli(who, "resume", pair.cid).returncode != 0
    assert oci.state(pair.roots["ours"], pair.cid).status is oci.Status.RUNNING
    # a process really stops: its utime does not move while paused
    oci.pause(pair.roots["ours"], pair.cid)
    assert oci.state(pair.roots["ours"], pair.cid).status is oci.Status.PAUSED
    assert [s.status for s in oci.list_containers(pair.roots["ours"])] == [oci.Status.PAUSED]
    assert "\nState:\tT (stopped)" in Path(f"/proc/{pair.pid}/status").read_text() or (
        "D (disk sleep)" in Path(f"/proc/{pair.pid}/status").read_text()
    )
    oci.resume(pair.roots["ours"], pair.cid)


def test_kill_of_a_paused_container_matches_runc(pair: Pair) -> None:
    for who in ("ours", "runc"):
        assert pair.cli(who, "pause", pair.cid).returncode == 0
        assert pair.cli(who, "kill", pair.cid, "KILL").returncode == 0
        if who == "ours":
            _, status = os.waitpid(pair.pid, 0)
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9
        _wait_status(pair, who, "stopped")
        assert pair.file(who, "freezer", "freezer.state") == "THAWED"
        assert pair.cli(who, "delete", pair.cid).returncode == 0
        assert not (CGROUP / "freezer" / pair.cgroups[who].lstrip("/")).exists()


def test_delete_force_of_a_paused_container(pair: Pair) -> None:
    oci.pause(pair.roots["ours"], pair.cid)
    oci.delete(pair.roots["ours"], pair.cid, force=True)
    _, status = os.waitpid(pair.pid, 0)
    assert os.WIFSIGNALED(status)
    assert not list(CGROUP.glob(f"*{pair.cgroups['ours']}"))


LIMITS = [
    ("memory", "memory.limit_in_bytes"),
    ("memory", "memory.memsw.limit_in_bytes"),
    ("memory", "memory.soft_limit_in_bytes"),
    ("cpu", "cpu.shares"),
    ("cpu", "cpu.cfs_quota_us"),
    ("cpu", "cpu.cfs_period_us"),
    ("cpuset", "cpuset.cpus"),
    ("pids", "pids.max"),
]


def _limits(pair: Pair, who: str) -> dict[str, str]:
    return {name: pair.file(who, ctrl, name) for ctrl, name in LIMITS}


@pytest.mark.parametrize(
    "flags",
    [
        # grow memory and memsw (memsw must be raised first), containerd's flags
        [
            "--memory",
            "128m",
            "--memory-swap",
            "268435456",
            "--memory-reservation",
            "32m",
            "--cpu-quota",
            "20000",
            "--cpu-period",
            "50000",
            "--cpuset-cpus",
            "0",
            "--pids-limit",
            "50",
        ],
        # shrink both (the limit must go first), and shares
        ["--memory", "32m", "--memory-swap", "48m", "--cpu-share", "512"],
        # memory only: the recorded memsw (128m) stays
        ["--memory", "100m"],
    ],
)
def test_update_flags_match_runc(pair: Pair, flags: list[str]) -> None:
    before = _limits(pair, "ours")
    assert before == _limits(pair, "runc")
    for who in ("ours", "runc"):
        p = pair.cli(who, "update", *flags, pair.cid)
        assert p.returncode == 0, (who, p.stderr)
    after = _limits(pair, "ours")
    assert after == _limits(pair, "runc")
    assert after != before


def test_update_resources_json_matches_runc(pair: Pair, tmp_path: Path) -> None:
    request = {
        "memory": {"limit": 96 << 20, "swap": 192 << 20},
        "cpu": {"shares": 2048, "quota": 30000, "period": 60000, "cpus": "0"},
        "pids": {"limit": 77},
    }
    path = tmp_path / "resources.json"
    path.write_text(json.dumps(request))
    assert pair.cli("ours", "update", "--resources", str(path), pair.cid).returncode == 0
    p = pair.cli("runc", "update", "-r", "-", pair.cid, input=json.dumps(request), stdin=None)
    assert p.returncode == 0, p.stderr
    ours = _limits(pair, "ours")
    assert ours == _limits(pair, "runc")
    assert ours["pids.max"] == "77" and ours["cpu.shares"] == "2048"
    # recorded for the next update (and for the daemon)
    record = json.loads((pair.roots["ours"] / pair.cid / "state.json").read_text())
    assert record["resources"]["memory"] == {"limit": 96 << 20, "swap": 192 << 20}
    assert record["resources"]["pids"] == {"limit": 77}
    assert record["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    # a stopped container cannot be updated, under both
    for who in ("ours", "runc"):
        pair.cli(who, "kill", pair.cid, "KILL")
        if who == "ours":
            os.waitpid(pair.pid, 0)
        _wait_status(pair, who, "stopped")
        assert pair.cli(who, "update", "--pids-limit", "5", pair.cid).returncode != 0


def test_library_update_merges(pair: Pair) -> None:
    merged = oci.update(pair.roots["ours"], pair.cid, {"pids": {"limit": 33}})
    assert merged["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    assert pair.file("ours", "pids", "pids.max") == "33"
    assert pair.file("ours", "memory", "memory.limit_in_bytes") == str(64 << 20)
    with pytest.raises(oci.OciError, match="cgroup v2"):
        oci.update(pair.roots["ours"], pair.cid, {"unified": {"memory.high": "1"}})


def test_ps_matches_runc(pair: Pair) -> None:
    for who in ("ours", "runc"):
        p = pair.cli(who, "ps", "--format", "json", pair.cid)
        pids = json.loads(p.stdout)
        assert len(pids) == 1
        table = pair.cli(who, "ps", pair.cid).stdout.splitlines()
        assert table[0].split()[:2] == ["UID", "PID"]
        assert [line.split()[1] for line in table[1:]] == [str(pids[0])]
        assert table[1].split()[-2:] == ["sleep", "1000"]
        custom = pair.cli(who, "ps", pair.cid, "-o", "pid,comm").stdout.split()
        assert custom == ["PID", "COMMAND", str(pids[0]), "sleep"]
    assert json.loads(pair.cli("ours", "ps", "-f", "json", pair.cid).stdout) == [pair.pid]
