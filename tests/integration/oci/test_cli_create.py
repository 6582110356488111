"""`create` through the command line the front end runs (`python -SE cri/oci/launcher.py`), for
the specs whose init imports a module only they need (init.preload).

Most of the init's steps run after pivot_root, where neither this package nor the standard
library can be imported any more: what they use must be loaded before the fork. The in-process
tests cannot see a module missing there (pytest has loaded everything); a fresh interpreter,
which loads only what create imports, can.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import build_rootfs, needs_root, ours_cli, set_cgroups_path

pytestmark = needs_root


@pytest.fixture
def bundle_dir() -> Iterator[Path]:
    """A 0755 directory: with a user namespace the container's root is an unmapped uid on the
    host, which pytest's 0700 temporary directories would keep out of its own rootfs."""
    top = Path(tempfile.mkdtemp(prefix="cri-cli-create-"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _cli(root: Path, *args: str, output: int | None = None) -> subprocess.CompletedProcess[str]:
    """The command, its stdout and stderr on `output` (a file: the init inherits them, so a pipe
    would stay open until the container exits), else captured."""
    pipe = subprocess.PIPE if output is None else output
    return subprocess.run(
        [*ours_cli(), "--root", str(root), *args],
        stdin=subprocess.DEVNULL,
        stdout=pipe,
        stderr=pipe,
        text=True,
        timeout=60,
        check=False,
    )


def _run_cli(root: Path, cid: str, bundle: Path) -> str:
    """create, start, wait until stopped (the container's stdout and stderr: a file); always
    deletes. Returns what the container wrote."""
    out_path = bundle / "out"
    try:
        with open(out_path, "w") as out:
            p = _cli(root, "create", "--bundle", str(bundle), cid, output=out.fileno())
        assert p.returncode == 0, out_path.read_text()
        p = _cli(root, "start", cid)
        assert p.returncode == 0, p.stderr
        for _ in range(1000):
            state = json.loads(_cli(root, "state", cid).stdout)
            if state["status"] == "stopped":
                break
            time.sleep(0.01)
        else:
            raise AssertionError(f"{cid} did not stop: {out_path.read_text()}")
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            _cli(root, "delete", "--force", cid)
    return out_path.read_text()


def _user_namespace(spec: dict[str, Any]) -> None:
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]


def _scheduler(spec: dict[str, Any]) -> None:
    spec["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    spec["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}


def _runtime_hooks(spec: dict[str, Any]) -> None:
    hook = {"path": "/bin/sh", "args": ["sh", "-c", "cat > /dev/null"]}
    spec["hooks"] = {"createRuntime": [hook], "createContainer": [hook]}


def _start_container_hook(spec: dict[str, Any]) -> None:
    """Alone: the only hooks the init runs after pivot_root."""
    hook = {"path": "/bin/sh", "args": ["sh", "-c", "echo hooked > /dev/shm/mark"]}
    spec["hooks"] = {"startContainer": [hook]}


@pytest.mark.parametrize(
    ("edit", "script", "expected"),
    [
        (_user_namespace, "read a b c < /proc/self/uid_map; echo $a $b", "0 100000\n"),
        (_scheduler, "cut -d' ' -f19 /proc/$$/stat", "7\n"),
        (_runtime_hooks, "echo ran", "ran\n"),
        (_start_container_hook, "cat /dev/shm/mark", "hooked\n"),
    ],
    ids=["user namespace", "scheduler", "hooks", "startContainer hook"],
)
def test_create_through_the_cli(
    base_spec: dict[str, Any],
    bundle_dir: Path,
    oci_root: Path,
    cid: str,
    edit: Callable[[dict[str, Any]], None],
    script: str,
    expected: str,
) -> None:
    bundle = bundle_dir / "bundle"
    build_rootfs(bundle / "rootfs")
    spec = json.loads(json.dumps(base_spec))
    spec["process"]["args"] = ["sh", "-c", script]
    set_cgroups_path(spec, cid)
    edit(spec)
    (bundle / "config.json").write_text(json.dumps(spec))
    assert _run_cli(oci_root, cid, bundle) == expected
    assert os.listdir(oci_root) == []
