"""Start-up cost of the Python CLI: what each command imports, through the launcher's path.

The compiled front end (cri/oci/front/) does plain start, kill and delete itself, but hands
every other case to the Python CLI, where a command costs about as much as the interpreter's own
start-up: one stray import of typing, logging or dataclasses (10 ms each, with their teardown)
makes it several times slower. These tests run the launcher the front end runs
(`python -SE cri/oci/launcher.py`) and list the modules loaded at exit.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.oci_records import save_live_record

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[3]
LAUNCHER = REPO / "cri" / "oci" / "launcher.py"

#: modules that cost milliseconds each to import and tear down
HEAVY = (
    "dataclasses",
    "enum",
    "inspect",
    "json",
    "logging",
    "pathlib",
    "re",
    "shutil",
    "subprocess",
    "traceback",
    "typing",
    "argparse",
)

# Runs the launcher's code with the command's argv, then reports sys.modules at exit.
_PROBE = """
import atexit, os, sys
def report():
    os.write(FD, " ".join(sorted(sys.modules)).encode())
atexit.register(report)
sys.argv = [LAUNCHER, *ARGS]
code = compile(open(LAUNCHER).read(), LAUNCHER, "exec")
sys.path.insert(0, os.path.dirname(LAUNCHER))
exec(code, {"__name__": "__main__", "__file__": LAUNCHER})
"""


def loaded_modules(*args: str) -> set[str]:
    r, w = os.pipe()
    probe = (
        _PROBE.replace("LAUNCHER", repr(str(LAUNCHER)))
        .replace("ARGS", repr(list(args)))
        .replace("FD", str(w))
    )
    proc = subprocess.run(
        [sys.executable, "-SE", "-c", probe],
        pass_fds=(w,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
        timeout=30,
    )
    os.close(w)
    with os.fdopen(r, "rb") as f:
        names = set(f.read().decode().split())
    assert names and proc.returncode == 0, proc.stderr.decode()
    return names


@pytest.mark.parametrize("args", [("--version",), ("--help",)])
def test_commands_import_nothing_heavy(args: tuple[str, ...]) -> None:
    heavy = sorted(set(HEAVY) & loaded_modules(*args))
    assert heavy == [], f"cri-oci {' '.join(args)} imports {heavy}"


@pytest.fixture
def fake_container(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """A created container "c1" whose init is a child that opens exec.fifo, writes its byte and
    closes it (what the real init does up to its execve), then sleeps; an empty v1 cgroup."""
    root = tmp_path / "root"
    cdir = root / "c1"
    cdir.mkdir(parents=True)
    fifo = cdir / "exec.fifo"
    os.mkfifo(fifo)
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    init = subprocess.Popen(
        ["sh", "-c", f"printf 0 > {fifo}; exec sleep 60"], stdin=subprocess.DEVNULL
    )
    save_live_record(
        root,
        init.pid,
        bundle=str(tmp_path),
        rootfs=str(tmp_path / "rootfs"),
        cgroup_version=1,
        cgroup_paths={"freezer": str(cgroup), "pids": str(cgroup)},
    )
    try:
        yield root, init
    finally:
        init.kill()
        init.wait()


def test_lifecycle_commands_import_nothing_heavy(
    fake_container: tuple[Path, subprocess.Popen[bytes]],
) -> None:
    root, init = fake_container
    for args in (
        ("state", "c1"),
        ("start", "c1"),
        ("state", "c1"),
        ("kill", "c1", "SIGCONT"),
        ("kill", "--all", "c1", "CONT"),
        ("delete", "--force", "c1"),
    ):
        heavy = sorted(set(HEAVY) & loaded_modules("--root", str(root), *args))
        assert heavy == [], f"cri-oci {' '.join(args)} imports {heavy}"
        if args[0] == "kill":
            for leftover in (root.parent / "cgroup").iterdir():
                leftover.unlink()  # freezer.state, by kill --all: delete then removes the cgroup
    assert init.wait(timeout=10) == -9  # delete --force killed it
    assert not (root / "c1").exists()


RUN = "echo ran >> out"
# A detached exec outlives the command line that started it: this one is still asleep when the
# CLI exits (runc exec -d; containerd's shim holds such processes).
LATE = "sleep 0.3; echo ran >> out"


@pytest.mark.skipif(os.geteuid() != 0, reason="exec sets its identity (setgroups): needs root")
def test_exec_imports_nothing_heavy(
    fake_container: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """exec (a kubelet exec probe's path) into the running fake container, whose namespaces are
    ours: every form the daemon and containerd use, each checked to have run."""
    root, _ = fake_container
    process = {"args": ["sh", "-c", RUN], "cwd": str(tmp_path), "env": ["A=1"]}
    (tmp_path / "config.json").write_text(json.dumps({"process": process}))
    (tmp_path / "process.json").write_text(json.dumps(process))
    loaded_modules("--root", str(root), "start", "c1")
    pid_file = tmp_path / "exec.pid"
    for args in (
        ("exec", "c1", "sh", "-c", RUN),
        ("exec", "--process", str(tmp_path / "process.json"), "c1"),
        ("exec", "--detach", "--pid-file", str(pid_file), "c1", "sh", "-c", LATE),
        ("exec", "-d", "--process", str(tmp_path / "process.json"), "c1"),
    ):
        heavy = sorted(set(HEAVY) & loaded_modules("--root", str(root), *args))
        assert heavy == [], f"cri-oci {' '.join(args)} imports {heavy}"
    assert pid_file.read_text().isdigit()
    runs = 4
    if os.path.exists("/dev/ptmx"):
        # a terminal: over containerd's console socket (detached), then proxied by the CLI itself
        from cri.oci.console import receive_master

        sock_path = tmp_path / "console.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(sock_path))
            listener.listen(1)
            for args in (
                ("exec", "-d", "-t", "--console-socket", str(sock_path), "c1", "sh", "-c", LATE),
                ("exec", "-t", "c1", "sh", "-c", RUN),
            ):
                heavy = sorted(set(HEAVY) & loaded_modules("--root", str(root), *args))
                assert heavy == [], f"cri-oci {' '.join(args)} imports {heavy}"
            listener.settimeout(10)
            conn, _ = listener.accept()
            with conn:
                master = receive_master(conn)[0]
        runs += 2
        # the master stays open until the detached shell has run: closing it hangs its terminal
        # up, and a SIGHUP before the echo would lose a run (seen in CI)
        try:
            _wait_for_runs(tmp_path / "out", runs)
        finally:
            os.close(master)
    _wait_for_runs(tmp_path / "out", runs)
    assert (tmp_path / "out").read_text() == "ran\n" * runs


def _wait_for_runs(out: Path, runs: int) -> None:
    deadline = time.monotonic() + 10
    while out.read_text().count("ran") < runs and time.monotonic() < deadline:
        time.sleep(0.01)  # the detached ones may still be running


def test_launcher_imports_the_checkout() -> None:
    out = subprocess.run(
        [sys.executable, "-SE", str(LAUNCHER), "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    assert out.stdout.startswith("cri-oci version")


#: what create's init imports for some specs only, before the fork (init.preload)
OPTIONAL = ("cri.oci.console", "cri.oci.hooks", "cri.oci.userns", "struct")

# Imports create as the CLI does, then runs init.preload for one spec; reports what is loaded.
_PRELOAD_PROBE = """
import json, os, sys
sys.path.insert(0, REPO)
from cri.oci import create as _, init, spec
loaded = set(sys.modules)
init.preload(spec.parse_spec(json.loads(RAW), BUNDLE), console=CONSOLE)
os.write(1, json.dumps([sorted(loaded), sorted(set(sys.modules) - loaded)]).encode())
"""

_BASE_SPEC: dict[str, object] = {
    "ociVersion": "1.0.2",
    "root": {"path": "rootfs"},
    "process": {"args": ["sh"], "cwd": "/", "env": ["PATH=/bin"]},
    "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]},
}


def _preloaded(tmp_path: Path, raw: dict[str, object], console: bool) -> tuple[set[str], set[str]]:
    """(modules loaded by importing create, modules preload adds for `raw`), in a fresh
    interpreter started as the front end starts it (-SE)."""
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    probe = (
        _PRELOAD_PROBE.replace("REPO", repr(str(REPO)))
        .replace("RAW", repr(json.dumps(raw)))
        .replace("BUNDLE", repr(str(tmp_path)))
        .replace("CONSOLE", repr(console))
    )
    out = subprocess.run(
        [sys.executable, "-SE", "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    before, added = json.loads(out)
    return set(before), set(added)


def test_create_imports_optional_modules_for_the_specs_that_need_them(tmp_path: Path) -> None:
    before, added = _preloaded(tmp_path, _BASE_SPEC, console=False)
    assert "fcntl" in before  # every init needs it after pivot_root
    assert sorted(set(OPTIONAL) & (before | added)) == []

    raw = json.loads(json.dumps(_BASE_SPEC))
    raw["process"]["terminal"] = True
    raw["process"]["scheduler"] = {"policy": "SCHED_BATCH"}
    raw["hooks"] = {"startContainer": [{"path": "/bin/true"}]}
    raw["linux"]["namespaces"].append({"type": "user"})
    raw["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    raw["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    _, added = _preloaded(tmp_path, raw, console=True)
    assert set(OPTIONAL) <= added
