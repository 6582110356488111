"""Our executor alone: failures leave nothing behind, exec, cgroup limits, the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import exec_output, needs_root, ours_cli, set_cgroups_path

from cri import oci
from tests.support.leaks import child_pids

pytestmark = needs_root
REPO = Path(__file__).resolve().parents[3]
STATE_ROOT = Path("/run/cri-test-oci")


def _mountinfo() -> list[str]:
    return sorted(
        line.split(" ", 4)[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
    )


def _cgroup_dirs(cid: str) -> list[Path]:
    return [p for p in Path("/sys/fs/cgroup").glob(f"*/cri-test-oci/{cid}") if p.exists()]


@pytest.fixture
def running(make_bundle: Callable[..., Path], cid: str) -> Iterator[tuple[str, int]]:
    """A started `sleep` container with a hostname, under /run/cri-test-oci."""

    def edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)
        spec["hostname"] = "execbox"

    bundle = make_bundle(["sleep", "1000"], edit)
    try:
        pid = oci.create(STATE_ROOT, cid, bundle)
        oci.start(STATE_ROOT, cid)
        yield cid, pid
    finally:
        with contextlib.suppress(oci.ContainerNotFound):
            oci.delete(STATE_ROOT, cid, force=True)
        with contextlib.suppress(ChildProcessError, UnboundLocalError):
            os.waitpid(pid, 0)


@pytest.mark.parametrize(
    "case",
    ["missing_rootfs", "unknown_namespace", "missing_executable", "bad_mount", "bad_cwd"],
)
def test_create_failure_leaves_nothing(
    make_bundle: Callable[..., Path], cid: str, case: str
) -> None:
    def edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)
        if case == "missing_rootfs":
            spec["root"]["path"] = "no-such-rootfs"
        elif case == "unknown_namespace":
            spec["linux"]["namespaces"].append({"type": "bogus"})
        elif case == "missing_executable":
            spec["process"]["args"] = ["no-such-binary"]
        elif case == "bad_mount":
            spec["mounts"].append({"destination": "/mnt", "type": "nosuchfs", "source": "x"})
        elif case == "bad_cwd":
            spec["process"]["cwd"] = "/bin/sh/sub"  # under a file: runc makes missing ones

    bundle = make_bundle(["true"], edit)
    before = _mountinfo()
    children = child_pids()  # the session's registry may be one
    with pytest.raises(oci.OciError) as info:
        oci.create(STATE_ROOT, cid, bundle)
    message = str(info.value)
    expected = {
        "missing_rootfs": "no-such-rootfs",
        "unknown_namespace": "bogus",
        "missing_executable": "executable file not found",
        "bad_mount": "/mnt",
        "bad_cwd": "/bin/sh/sub",
    }[case]
    assert expected in message
    if case in ("missing_rootfs", "unknown_namespace", "missing_executable"):
        assert isinstance(info.value, oci.InvalidSpec)
    assert not (STATE_ROOT / cid).exists()
    assert _cgroup_dirs(cid) == []
    assert _mountinfo() == before
    assert child_pids() <= children  # no child left, not even a zombie


def test_duplicate_id_and_missing_container(
    running: tuple[str, int], make_bundle: Callable[..., Path]
) -> None:
    cid, _ = running
    with pytest.raises(oci.ContainerExists):
        oci.create(STATE_ROOT, cid, make_bundle(["true"]))
    with pytest.raises(oci.ContainerNotFound):
        oci.state(STATE_ROOT, "no-such-container")
    with pytest.raises(oci.InvalidState):
        oci.start(STATE_ROOT, cid)
    with pytest.raises(oci.InvalidState):
        oci.delete(STATE_ROOT, cid)


def test_exec_follows_start_closely(make_bundle: Callable[..., Path], cid: str) -> None:
    """The init execs within milliseconds of `start` returning. It took 200 ms when closing the
    caller's fds fell back to a million close() calls: without noNewPrivileges the container's
    seccomp filter is already in place then, and a profile without close_range (runtime-tools'
    default) refuses it. A SIGTERM sent by `kill` right after `start` then reached a pid-namespace
    init that had no handler yet and was dropped (runtime-tools killsig)."""

    def edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)
        spec["process"]["noNewPrivileges"] = False
        spec["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO"}],
        }

    bundle = make_bundle(["sh", "-c", "trap 'exit 3' TERM; sleep 100 & wait $!"], edit)
    pid = oci.create(STATE_ROOT, cid, bundle)
    try:
        started = time.monotonic()
        oci.start(STATE_ROOT, cid)
        while Path(f"/proc/{pid}/comm").read_text().strip() != "sh":
            assert time.monotonic() - started < 5
            time.sleep(0.0005)
        assert time.monotonic() - started < 0.1
    finally:
        oci.delete(STATE_ROOT, cid, force=True)
        os.waitpid(pid, 0)


def test_state_transitions_and_list(running: tuple[str, int]) -> None:
    cid, pid = running
    st = oci.state(STATE_ROOT, cid)
    assert st.status is oci.Status.RUNNING and st.pid == pid
    assert cid in [s.id for s in oci.list_containers(STATE_ROOT)]
    record = json.loads((STATE_ROOT / cid / "state.json").read_text())
    assert record["namespace_paths"]["pid"] == f"/proc/{pid}/ns/pid"
    oci.kill(STATE_ROOT, cid, 9)
    os.waitpid(pid, 0)
    assert oci.state(STATE_ROOT, cid).status is oci.Status.STOPPED
    with pytest.raises(oci.InvalidState):
        oci.kill(STATE_ROOT, cid, 15)
    oci.delete(STATE_ROOT, cid)
    assert not (STATE_ROOT / cid).exists()
    assert _cgroup_dirs(cid) == []


def _exec(cid: str, args: list[str], **kw: Any) -> tuple[int, str]:
    return exec_output(STATE_ROOT, cid, {"args": args, "cwd": "/", "env": ["PATH=/bin"]}, **kw)


def test_exec_joins_namespaces(running: tuple[str, int]) -> None:
    cid, pid = running
    code, out = _exec(
        cid,
        [
            "sh",
            "-c",
            "hostname; for n in mnt pid uts; do readlink /proc/self/ns/$n; done;"
            " cat /proc/1/cmdline",
        ],
    )
    assert code == 0
    lines = out.split("\n")
    assert lines[0] == "execbox"
    assert lines[1] == os.readlink(f"/proc/{pid}/ns/mnt")
    assert lines[2] == os.readlink(f"/proc/{pid}/ns/pid")
    assert lines[3] == os.readlink(f"/proc/{pid}/ns/uts")
    assert lines[4].startswith("sleep")
    assert _exec(cid, ["sh", "-c", "exit 5"])[0] == 5
    assert _exec(cid, ["sh", "-c", "kill -TERM $$"])[0] == 143


def test_exec_detach_and_missing_binary(running: tuple[str, int]) -> None:
    cid, _ = running
    with pytest.raises(oci.InvalidSpec, match="executable file not found"):
        _exec(cid, ["nope"])
    pid = oci.exec_process(
        STATE_ROOT,
        cid,
        {"args": ["sleep", "100"], "cwd": "/", "env": ["PATH=/bin"]},
        stdin=None,
        stdout=None,
        stderr=None,
        detach=True,
    )
    # the detached process is in the container's cgroup and dies with it
    procs = (_cgroup_dirs(cid)[0] / "cgroup.procs").read_text().split()
    assert str(pid) in procs
    oci.kill(STATE_ROOT, cid, 9, all=True)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status)


def test_cgroup_limits(make_bundle: Callable[..., Path], cid: str) -> None:
    def edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)
        spec["linux"]["resources"] = {
            "devices": [{"allow": False, "access": "rwm"}],
            "memory": {"limit": 64 * 1024 * 1024},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
            "pids": {"limit": 42},
        }

    bundle = make_bundle(
        [
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max;"
            " echo hi > /dev/null && echo devnull-ok",
        ],
        edit,
    )
    out = bundle / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT)
    try:
        pid = oci.create(STATE_ROOT, cid, bundle, stdout=fd, stderr=fd)
        mem = Path(f"/sys/fs/cgroup/memory/cri-test-oci/{cid}")
        assert (mem / "memory.limit_in_bytes").read_text().strip() == str(64 * 1024 * 1024)
        cpu = Path(f"/sys/fs/cgroup/cpu/cri-test-oci/{cid}")
        assert (cpu / "cpu.shares").read_text().strip() == "512"
        assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert Path(f"/sys/fs/cgroup/pids/cri-test-oci/{cid}/pids.max").read_text().strip() == "42"
        assert str(pid) in (mem / "cgroup.procs").read_text().split()
        oci.start(STATE_ROOT, cid)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
    finally:
        os.close(fd)
        with contextlib.suppress(oci.ContainerNotFound):
            oci.delete(STATE_ROOT, cid, force=True)
    assert out.read_text().split() == [str(64 * 1024 * 1024), "42", "devnull-ok"]
    assert _cgroup_dirs(cid) == []


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Our CLI as installed (the compiled front end, handing most commands to Python)."""
    p = subprocess.run(
        [*ours_cli(), "--root", str(STATE_ROOT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p


def test_cli_lifecycle(make_bundle: Callable[..., Path], cid: str, tmp_path: Path) -> None:
    bundle = make_bundle(["sleep", "1000"], lambda s: set_cgroups_path(s, cid))
    pid_file = tmp_path / "pid"
    try:
        # create's stdio is inherited by the init: give it files, or run() would wait for EOF.
        with open(tmp_path / "create.out", "w") as out:
            p = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "cri.oci",
                    "--root",
                    str(STATE_ROOT),
                    "create",
                    "--bundle",
                    str(bundle),
                    "--pid-file",
                    str(pid_file),
                    cid,
                ],
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                env=dict(os.environ, PYTHONPATH=str(REPO)),
                timeout=60,
            )
        assert p.returncode == 0, (tmp_path / "create.out").read_text()
        st = json.loads(_cli("state", cid).stdout)
        assert st["status"] == "created" and st["pid"] == int(pid_file.read_text())
        _cli("start", cid)
        assert json.loads(_cli("state", cid).stdout)["status"] == "running"
        assert json.loads(_cli("ps", "--format", "json", cid).stdout) == [st["pid"]]
        assert _cli("exec", cid, "sh", "-c", "exit 7", check=False).returncode == 7
        assert _cli("exec", cid, "hostname").stdout.strip() == "runc"
        assert cid in _cli("list").stdout
        assert _cli("delete", cid, check=False).returncode == 1
        _cli("kill", cid, "KILL")
        for _ in range(200):
            if json.loads(_cli("state", cid).stdout)["status"] == "stopped":
                break
            time.sleep(0.05)
        assert json.loads(_cli("state", cid).stdout)["status"] == "stopped"
        _cli("delete", cid)
        assert _cli("state", cid, check=False).returncode == 1
    finally:
        _cli("delete", "--force", cid, check=False)
    assert _cgroup_dirs(cid) == []


def test_cli_errors_go_to_json_log(tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "cri.oci",
            "--root",
            str(STATE_ROOT),
            "--log",
            str(log),
            "--log-format",
            "json",
            "start",
            "nope",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert p.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "does not exist" in entry["msg"]


def test_cli_warnings_in_the_init_after_pivot_root(
    make_bundle: Callable[..., Path], cid: str, tmp_path: Path
) -> None:
    """What the init only logs after pivot_root (a capability this host's root lacks, an
    oom_score_adj it may not lower) must not fail `create`: the logging module cannot be
    imported from the container's filesystem then, so it must already be loaded. Through the CLI,
    whose start-up leaves logging out."""

    def edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)
        caps = spec["process"]["capabilities"]
        for kind in ("bounding", "effective", "permitted"):
            caps[kind] = [*caps[kind], "CAP_SYS_RESOURCE", "CAP_MAC_OVERRIDE"]
        spec["process"]["oomScoreAdj"] = -999

    bundle = make_bundle(["sh", "-c", "echo started"], edit)
    out = tmp_path / "create.out"
    try:
        with open(out, "w") as f:
            p = subprocess.run(
                [sys.executable, "-m", "cri.oci", "--root", str(STATE_ROOT), "create"]
                + ["--bundle", str(bundle), cid],
                stdout=f,
                stderr=f,
                stdin=subprocess.DEVNULL,
                env=dict(os.environ, PYTHONPATH=str(REPO)),
                timeout=60,
            )
        assert p.returncode == 0, out.read_text()
        _cli("start", cid)
        for _ in range(200):
            if json.loads(_cli("state", cid).stdout)["status"] == "stopped":
                break
            time.sleep(0.05)
        assert "started" in out.read_text()
    finally:
        _cli("delete", "--force", cid, check=False)
