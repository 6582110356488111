"""--preserve-fds and socket activation (LISTEN_FDS), under our CLI and runc's."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import RUNC, needs_root, set_cgroups_path

from cri import oci

pytestmark = needs_root
REPO = Path(__file__).resolve().parents[3]

# NOTE: no pipeline while listing: the shell's own pipe fds would show up, racily
PROBE = (
    "echo LISTEN_FDS=$LISTEN_FDS LISTEN_PID=$LISTEN_PID; ls /proc/$$/fd; "
    "for fd in 3 4; do [ -e /proc/$$/fd/$fd ] && head -c 5 <&$fd; echo; done 2>/dev/null"
)


def _runtime(who: str, root: Path) -> list[str]:
    if who == "ours":
        return [sys.executable, "-m", "cri.oci", "--root", str(root)]
    return [RUNC, "--root", str(root)]


def _run(
    who: str, root: Path, cid: str, bundle: Path, tmp_path: Path, preserve: int, listen: int
) -> str:
    """create (from a shell that opens fds 3 and 4 and sets LISTEN_* for the runtime's pid),
    start, wait for the container to stop; its output."""
    for name in ("three", "four"):
        (tmp_path / name).write_text(name * 3)
    out = tmp_path / f"{who}.out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    activation = f"export LISTEN_PID=$$ LISTEN_FDS={listen}; " if listen else ""
    with open(out, "w") as f:
        p = subprocess.run(
            [
                "/bin/sh",
                "-c",
                activation + f'exec "$@" 3<{tmp_path}/three 4<{tmp_path}/four',
                "sh",
                *_runtime(who, root),
                "create",
                "--bundle",
                str(bundle),
                "--preserve-fds",
                str(preserve),
                cid,
            ],
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=f,
            env=env,
            timeout=60,
        )
    try:
        assert p.returncode == 0, out.read_text()
        subprocess.run([*_runtime(who, root), "start", cid], check=True, env=env, timeout=60)
        for _ in range(200):
            st = subprocess.run(
                [*_runtime(who, root), "state", cid], capture_output=True, text=True, env=env
            )
            if json.loads(st.stdout)["status"] == "stopped":
                break
            time.sleep(0.05)
    finally:
        subprocess.run([*_runtime(who, root), "delete", "--force", cid], env=env, timeout=60)
    return out.read_text()


@pytest.mark.parametrize(("preserve", "listen"), [(0, 0), (2, 0), (1, 1), (0, 2)])
def test_preserved_and_listen_fds_match_runc(
    make_bundle: Callable[..., Path], tmp_path: Path, cid: str, preserve: int, listen: int
) -> None:
    def edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)

    ours = _run(
        "ours",
        tmp_path / "ours",
        cid,
        make_bundle(["sh", "-c", PROBE], edit),
        tmp_path,
        preserve,
        listen,
    )
    theirs = _run(
        "runc",
        tmp_path / "runc",
        cid,
        make_bundle(["sh", "-c", PROBE], edit),
        tmp_path,
        preserve,
        listen,
    )
    assert ours == theirs
    lines = ours.splitlines()
    passed = preserve + listen
    assert lines[0] == (
        f"LISTEN_FDS={listen} LISTEN_PID=1" if listen else "LISTEN_FDS= LISTEN_PID="
    )
    assert sorted(int(fd) for fd in lines[1:-2]) == list(range(3 + passed))
    assert lines[-2:] == ["three" if passed >= 1 else "", "fourf" if passed >= 2 else ""]


def test_library_preserve_fds_and_exec(
    make_bundle: Callable[..., Path], tmp_path: Path, cid: str
) -> None:
    root = tmp_path / "ours"
    (tmp_path / "data").write_text("payload")
    r, w = os.pipe()
    data = os.open(tmp_path / "data", os.O_RDONLY | os.O_CLOEXEC)
    bundle = make_bundle(
        ["sh", "-c", "cat <&3; echo; echo $LISTEN_FDS; sleep 100"],
        lambda s: set_cgroups_path(s, cid),
    )
    try:
        pid = oci.create(root, cid, bundle, stdout=w, preserve_fds=[data], listen_fds=1)
        os.close(w)
        oci.start(root, cid)
        with os.fdopen(r) as f:
            assert f.readline() == "payload\n"
            assert f.readline() == "1\n"
        # exec: the same numbering, without the activation variables (a fresh open: the init's
        # fd 3 shares its offset with `data`, now at the end)
        again = os.open(tmp_path / "data", os.O_RDONLY | os.O_CLOEXEC)
        out_r, out_w = os.pipe()
        code = oci.exec_process(
            root,
            cid,
            # `exec ls`: a pipeline would add the shell's pipe fds to the listing, racily
            {"args": ["sh", "-c", "cat <&3; echo; exec ls /proc/self/fd"], "env": ["PATH=/bin"]},
            stdin=None,
            stdout=out_w,
            stderr=out_w,
            preserve_fds=[again, data],
        )
        os.close(out_w)
        os.close(again)
        with os.fdopen(out_r) as f:
            # 0-4 (3 and 4 passed), 5: the directory ls reads
            assert (code, f.read().split()) == (0, ["payload", "0", "1", "2", "3", "4", "5"])
        with pytest.raises(oci.OciError, match="preserved-fd"):
            oci.exec_process(
                root,
                cid,
                {"args": ["true"]},
                stdin=None,
                stdout=None,
                stderr=None,
                preserve_fds=[987],
            )
    finally:
        os.close(data)
        with contextlib.suppress(oci.ContainerNotFound):
            oci.delete(root, cid, force=True)
        with contextlib.suppress(ChildProcessError, UnboundLocalError):
            os.waitpid(pid, 0)
