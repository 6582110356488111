"""The compiled front end (cri/oci/front/): plain start, kill and delete without Python, and
every other case handed to the Python CLI with the same results as calling that directly."""

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
from conftest import needs_root, ours_cli, set_cgroups_path

from cri import oci
from cri.oci.front import compile_front

pytestmark = needs_root
REPO = Path(__file__).resolve().parents[3]


def _cgroup_dirs(cid: str) -> list[Path]:
    return [p for p in Path("/sys/fs/cgroup").glob(f"*/cri-test-oci/{cid}") if p.exists()]


def _run(command: list[str], root: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        **kw,
    )


PYTHON_CLI = [sys.executable, "-m", "cri.oci"]


def _python(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(PYTHON_CLI, root, *args, env=dict(os.environ, PYTHONPATH=str(REPO)))


def _front(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(ours_cli(), root, *args)


@pytest.fixture
def no_python_front(tmp_path: Path) -> list[str]:
    """A front end that cannot hand anything over: no interpreter where it looks, none on PATH.
    What it still does, it does without Python."""
    binary = compile_front(
        tmp_path / "pkg" / "cri" / "oci" / "front" / "cri-oci", "/nonexistent", strict=True
    )
    return [str(binary)]


NO_PATH = {"PATH": "/nonexistent"}


@pytest.fixture
def created(
    make_bundle: Callable[..., Path], oci_root: Path, cid: str
) -> Iterator[Callable[..., int]]:
    """create(args, edit=None) -> pid of a created container `cid` under oci_root; deleted after."""
    pids: list[int] = []

    def create(args: list[str], edit: Callable[[dict[str, Any]], None] | None = None) -> int:
        def full_edit(spec: dict[str, Any]) -> None:
            set_cgroups_path(spec, cid)
            if edit is not None:
                edit(spec)

        pids.append(oci.create(oci_root, cid, make_bundle(args, full_edit)))
        return pids[-1]

    try:
        yield create
    finally:
        with contextlib.suppress(oci.ContainerNotFound):
            oci.delete(oci_root, cid, force=True)
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    assert _cgroup_dirs(cid) == []


def _wait_stopped(root: Path, cid: str) -> None:
    for _ in range(400):
        if oci.state(root, cid).status is oci.Status.STOPPED:
            return
        time.sleep(0.01)
    raise AssertionError(f"{cid} did not stop")


def test_plain_lifecycle_needs_no_python(
    created: Callable[..., int], no_python_front: list[str], oci_root: Path, cid: str
) -> None:
    pid = created(["sleep", "1000"])
    assert (oci_root / cid / "state.brief").is_file()
    assert _run(no_python_front, oci_root, "start", cid, env=NO_PATH).returncode == 0
    assert oci.state(oci_root, cid).status is oci.Status.RUNNING
    p = _run(no_python_front, oci_root, "kill", cid, "KILL", env=NO_PATH)
    assert p.returncode == 0, p.stderr
    os.waitpid(pid, 0)
    assert oci.state(oci_root, cid).status is oci.Status.STOPPED
    assert _run(no_python_front, oci_root, "delete", cid, env=NO_PATH).returncode == 0
    assert not (oci_root / cid).exists()
    assert _cgroup_dirs(cid) == []
    # and what it hands over fails for want of an interpreter, not silently
    p = _run(no_python_front, oci_root, "state", cid, env=NO_PATH)
    assert p.returncode != 0 and "python3" in p.stderr


def test_delete_force_of_a_running_container(
    created: Callable[..., int], no_python_front: list[str], oci_root: Path, cid: str
) -> None:
    created(["sleep", "1000"])
    oci.start(oci_root, cid)
    assert _run(no_python_front, oci_root, "delete", "--force", cid, env=NO_PATH).returncode == 0
    assert not (oci_root / cid).exists() and _cgroup_dirs(cid) == []


def test_delete_of_a_created_container_kills_it(
    created: Callable[..., int], no_python_front: list[str], oci_root: Path, cid: str
) -> None:
    """As runc: a created container is deleted without --force."""
    created(["sleep", "1000"])
    assert _run(no_python_front, oci_root, "delete", cid, env=NO_PATH).returncode == 0
    assert not (oci_root / cid).exists() and _cgroup_dirs(cid) == []


@pytest.mark.parametrize(
    "args",
    [
        ("state", "{cid}"),
        ("start", "{cid}"),  # already running
        ("delete", "{cid}"),  # running, without --force
        ("kill", "{cid}", "NOSUCHSIGNAL"),
        ("kill", "{cid}", "0"),
        ("start", "nope"),
        ("kill", "nope"),
        ("delete", "nope"),
        ("delete", "--force", "nope"),
        ("start", "../x"),
        ("start",),
        ("kill", "{cid}", "KILL", "extra"),
        ("--systemd-cgroup", "start", "{cid}"),
        ("frobnicate", "{cid}"),
        ("--version",),
    ],
)
def test_what_it_hands_over_answers_as_python_does(
    created: Callable[..., int], oci_root: Path, cid: str, args: tuple[str, ...]
) -> None:
    created(["sleep", "1000"])
    oci.start(oci_root, cid)
    argv = [a.format(cid=cid) for a in args]
    ours, python = _front(oci_root, *argv), _python(oci_root, *argv)
    assert (ours.returncode, ours.stdout, ours.stderr) == (
        python.returncode,
        python.stdout,
        python.stderr,
    )
    assert oci.state(oci_root, cid).status is oci.Status.RUNNING


def test_kill_and_delete_of_a_stopped_container_answer_as_python_does(
    created: Callable[..., int], oci_root: Path, cid: str
) -> None:
    pid = created(["true"])
    oci.start(oci_root, cid)
    os.waitpid(pid, 0)
    _wait_stopped(oci_root, cid)
    ours, python = _front(oci_root, "kill", cid), _python(oci_root, "kill", cid)
    assert ours.returncode == python.returncode == 1 and ours.stderr == python.stderr
    ours, python = _front(oci_root, "start", cid), _python(oci_root, "start", cid)
    assert ours.returncode == python.returncode == 1 and ours.stderr == python.stderr
    assert _front(oci_root, "delete", cid).returncode == 0
    assert not (oci_root / cid).exists()


def test_errors_go_to_the_json_log(tmp_path: Path, oci_root: Path) -> None:
    log = tmp_path / "log.json"
    p = _front(oci_root, "--log", str(log), "--log-format", "json", "start", "nope")
    assert p.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "does not exist" in entry["msg"]


def test_a_container_with_hooks_is_left_to_python(
    created: Callable[..., int], oci_root: Path, cid: str, tmp_path: Path
) -> None:
    """No state.brief: its poststart and poststop hooks run, through the front end."""
    marks = tmp_path / "marks"

    def edit(spec: dict[str, Any]) -> None:
        hook = {"path": "/bin/sh", "args": ["sh", "-c", f"echo $0 >> {marks}"]}
        spec["hooks"] = {
            kind: [{**hook, "args": [*hook["args"], kind]}] for kind in ("poststart", "poststop")
        }

    created(["sleep", "1000"], edit)
    assert not (oci_root / cid / "state.brief").exists()
    assert _front(oci_root, "start", cid).returncode == 0
    assert _front(oci_root, "delete", "--force", cid).returncode == 0
    assert marks.read_text().split() == ["poststart", "poststop"]


def test_a_paused_container_is_left_to_python(
    created: Callable[..., int], oci_root: Path, cid: str
) -> None:
    created(["sleep", "1000"])
    assert _front(oci_root, "start", cid).returncode == 0
    oci.pause(oci_root, cid)
    p = _front(oci_root, "delete", cid)
    assert p.returncode == 1 and "paused" in p.stderr
    assert _front(oci_root, "kill", cid, "KILL").returncode == 0  # thawed, so it can die
    assert _front(oci_root, "delete", cid).returncode == 0
    assert not (oci_root / cid).exists() and _cgroup_dirs(cid) == []


def test_delete_leaves_leftovers_to_python(
    created: Callable[..., int], oci_root: Path, cid: str
) -> None:
    """Without a pid namespace of its own, the init's death leaves its children running: the
    front end sees them in the cgroup and hands over; Python kills them."""

    def edit(spec: dict[str, Any]) -> None:
        spec["linux"]["namespaces"] = [
            ns for ns in spec["linux"]["namespaces"] if ns["type"] != "pid"
        ]

    created(["sh", "-c", "sleep 1000 & sleep 1000 & wait"], edit)
    assert _front(oci_root, "start", cid).returncode == 0
    procs = Path(f"/sys/fs/cgroup/pids/cri-test-oci/{cid}/cgroup.procs")
    for _ in range(200):
        if len(procs.read_text().split()) == 3:
            break
        time.sleep(0.01)
    assert _front(oci_root, "delete", "--force", cid).returncode == 0
    assert not (oci_root / cid).exists() and _cgroup_dirs(cid) == []


def test_a_state_dir_with_a_subdirectory_is_left_to_python(
    created: Callable[..., int], no_python_front: list[str], oci_root: Path, cid: str
) -> None:
    created(["sleep", "1000"])
    (oci_root / cid / "extra").mkdir()
    p = _run(no_python_front, oci_root, "delete", cid, env=NO_PATH)
    assert p.returncode != 0  # handed over (and no python here): state.json must still be there
    assert (oci_root / cid / "state.json").is_file()
    assert _front(oci_root, "delete", cid).returncode == 0
    assert not (oci_root / cid).exists()
