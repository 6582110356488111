"""OCI hooks under our executor and runc: what each hook sees on stdin, where it runs, failures."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import needs_root, ours_cli, runc, runc_create, set_cgroups_path

from cri import oci
from tests.support.leaks import child_pids

pytestmark = needs_root

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # `runc spec`'s
KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def _recording_hooks(out: Path) -> dict[str, list[dict[str, Any]]]:
    """Each hook saves its stdin and appends its kind to a log; startContainer runs inside the
    container (its /bin/sh is the rootfs busybox), so it writes into the rootfs's /tmp."""
    hooks: dict[str, list[dict[str, Any]]] = {}
    for kind in KINDS:
        target = "/tmp" if kind == "startContainer" else str(out)
        script = (
            f"cat > {target}/{kind}.json; echo {kind} >> {target}/order; "
            f"readlink /proc/self/ns/mnt > {target}/{kind}.mnt; pwd > {target}/{kind}.cwd; "
            # shells add PWD/SHLVL themselves; the rest is what the hook was given
            f"env | grep -v -e ^PWD= -e ^SHLVL= -e ^_= | sort > {target}/{kind}.env"
        )
        hooks[kind] = [{"path": "/bin/sh", "args": ["sh", "-c", script], "timeout": 10}]
    return hooks


def _run_ours(root: Path, cid: str, bundle: Path) -> None:
    with open(bundle / "out", "w") as out:
        pid = oci.create(root, cid, bundle, stdout=out.fileno(), stderr=out.fileno())
    try:
        oci.start(root, cid)
        assert os.waitpid(pid, 0)[1] == 0, (bundle / "out").read_text()
    finally:
        oci.delete(root, cid, force=True)


def _run_runc(root: Path, cid: str, bundle: Path) -> None:
    try:
        runc_create(root, cid, bundle)
        runc(root, "start", cid)
        for _ in range(200):
            if json.loads(runc(root, "state", cid).stdout)["status"] == "stopped":
                break
            import time

            time.sleep(0.05)
    finally:
        runc(root, "delete", "--force", cid, check=False)


def _seen(out: Path, rootfs: Path) -> dict[str, dict[str, Any]]:
    seen = {}
    for kind in KINDS:
        where = rootfs / "tmp" if kind == "startContainer" else out
        state = json.loads((where / f"{kind}.json").read_text())
        state["mnt"] = (where / f"{kind}.mnt").read_text().strip()
        state["cwd"] = (where / f"{kind}.cwd").read_text().strip()
        state["env"] = (where / f"{kind}.env").read_text().split("\n")
        seen[kind] = state
    return seen


def _normalize(seen: dict[str, dict[str, Any]], bundle: Path) -> dict[str, dict[str, Any]]:
    host_mnt = os.readlink("/proc/self/ns/mnt")
    result = {}
    for kind, state in seen.items():
        state = dict(state)
        assert state.pop("bundle") == str(bundle)
        assert state.pop("ociVersion").startswith("1.0.2")  # runc 1.1.5 says 1.0.2-dev
        # the init's own hooks see pid 1 (their pid namespace); the runtime's see the host pid
        if "pid" in state:
            state["pid"] = 1 if state["pid"] == 1 else "host pid"
        state["mnt"] = "host" if state["mnt"] == host_mnt else "container"
        state["cwd"] = (
            "rootfs"
            if state["cwd"] == str(bundle / "rootfs")
            else state["cwd"].replace(str(bundle), "BUNDLE")
        )
        result[kind] = state
    return result


def test_hooks_see_what_runc_hooks_see(
    make_bundle: Callable[..., Path], tmp_path: Path, cid: str
) -> None:
    outs = {}
    bundles = {}
    for who in ("ours", "runc"):
        out = tmp_path / f"out-{who}"
        out.mkdir()

        def edit(spec: dict[str, Any], out: Path = out) -> None:
            set_cgroups_path(spec, cid)
            spec["hooks"] = _recording_hooks(out)
            spec["root"]["readonly"] = False  # startContainer writes into the rootfs's /tmp
            spec["annotations"] = {"org.example/key": "value"}

        outs[who] = out
        bundles[who] = make_bundle(["true"], edit)
    _run_ours(tmp_path / "ours", cid, bundles["ours"])
    _run_runc(tmp_path / "runc", cid, bundles["runc"])
    ours = _normalize(_seen(outs["ours"], bundles["ours"] / "rootfs"), bundles["ours"])
    theirs = _normalize(_seen(outs["runc"], bundles["runc"] / "rootfs"), bundles["runc"])

    # NOTE: runc 1.1.5 runs poststart at the end of `create` (status "created"); the runtime-spec
    # (and runc >= 1.2) run it after `start`, with status "running", as we do.
    assert theirs["poststart"]["status"] == "created"
    assert ours["poststart"]["status"] == "running"
    theirs["poststart"]["status"] = "running"
    assert ours == theirs
    # without `env`, the init's hooks get the container process's environment (runc's init has
    # switched to it), the runtime's hooks the runtime's own
    envs = {kind: [v for v in state.pop("env") if v] for kind, state in ours.items()}
    assert envs["createContainer"] == sorted(["PATH=" + PATH, "TERM=xterm"])
    assert envs["startContainer"] == sorted(["HOME=/root", "PATH=" + PATH, "TERM=xterm"])
    assert f"PATH={os.environ['PATH']}" in envs["createRuntime"]
    ann = {"org.example/key": "value"}

    def seen(status: str, pid: object, mnt: str, cwd: str) -> dict[str, Any]:
        d: dict[str, Any] = {"id": cid, "status": status, "annotations": ann, "mnt": mnt}
        if pid is not None:
            d["pid"] = pid
        return d | {"cwd": cwd}

    assert ours == {
        "prestart": seen("creating", "host pid", "host", "BUNDLE"),
        "createRuntime": seen("creating", "host pid", "host", "BUNDLE"),
        "createContainer": seen("creating", 1, "container", "rootfs"),
        "startContainer": seen("created", 1, "container", "/"),
        "poststart": seen("running", "host pid", "host", "BUNDLE"),
        "poststop": seen("stopped", None, "host", os.getcwd()),  # where delete ran (runc's)
    }
    order = (outs["ours"] / "order").read_text().split()
    assert order == ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]


def test_failing_create_hook_fails_create_and_leaves_nothing(
    make_bundle: Callable[..., Path], tmp_path: Path, cid: str
) -> None:
    for kind in ("prestart", "createRuntime", "createContainer"):

        def edit(spec: dict[str, Any], kind: str = kind) -> None:
            set_cgroups_path(spec, cid)
            spec["hooks"] = {
                kind: [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]
            }

        bundle = make_bundle(["true"], edit)
        children = child_pids()  # the session's registry may be one
        with pytest.raises(oci.OciError) as info:
            oci.create(tmp_path / "ours", cid, bundle)
        assert f"step {kind} hooks" in str(info.value) or kind in str(info.value)
        assert "exit status 3" in str(info.value) and "nope" in str(info.value)
        assert not (tmp_path / "ours" / cid).exists()
        assert not list(Path("/sys/fs/cgroup").glob(f"*/cri-test-oci/{cid}"))
        assert child_pids() <= children
        p = runc_create(tmp_path / "runc", cid, bundle, check=False)
        runc(tmp_path / "runc", "delete", "--force", cid, check=False)
        assert p.returncode != 0 and "exit status 3" in p.stderr


def test_hook_timeout_and_environment(
    make_bundle: Callable[..., Path], tmp_path: Path, cid: str
) -> None:
    def slow(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)
        spec["hooks"] = {
            "createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]
        }

    import time

    t0 = time.monotonic()
    with pytest.raises(oci.OciError, match="timeout"):
        oci.create(tmp_path / "ours", cid, make_bundle(["true"], slow))
    assert time.monotonic() - t0 < 10

    env_file = tmp_path / "env"

    def env(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)
        spec["hooks"] = {
            "createRuntime": [
                {
                    "path": "/bin/sh",
                    "args": ["sh", "-c", f"env > {env_file}"],
                    "env": ["A=1", "B=x=y"],
                }
            ]
        }

    _run_ours(tmp_path / "ours", cid, make_bundle(["true"], env))
    lines = set(env_file.read_text().split())
    assert {"A=1", "B=x=y"} <= lines and not any(line.startswith("HOME=") for line in lines)


def test_poststart_and_poststop_failures_are_logged_not_fatal(
    make_bundle: Callable[..., Path], tmp_path: Path, cid: str, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "second-ran"

    def edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)
        spec["hooks"] = {
            kind: [
                {"path": "/bin/false"},
                {"path": "/bin/sh", "args": ["sh", "-c", f"echo {kind} >> {marker}"]},
            ]
            for kind in ("poststart", "poststop")
        }

    root = tmp_path / "ours"
    pid = oci.create(root, cid, make_bundle(["true"], edit))
    with caplog.at_level("WARNING", logger="cri.oci.hooks"):
        oci.start(root, cid)
        os.waitpid(pid, 0)
        oci.delete(root, cid)
    assert marker.read_text().split() == ["poststart", "poststop"]
    assert [r.getMessage() for r in caplog.records if "hook #0" in r.getMessage()] == [
        "error running poststart hook #0 (/bin/false): exit status 1, stdout: , stderr: ",
        "error running poststop hook #0 (/bin/false): exit status 1, stdout: , stderr: ",
    ]
    assert not (root / cid).exists()


def test_cli_create_runs_hooks(make_bundle: Callable[..., Path], tmp_path: Path, cid: str) -> None:
    """The CLI path too (containerd/CRI-O call `create` as a program)."""

    out = tmp_path / "created"

    def edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)
        spec["hooks"] = {
            "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}"]}]
        }

    bundle = make_bundle(["true"], edit)
    root = tmp_path / "ours"
    try:
        p = subprocess.run(
            [*ours_cli(), "--root", str(root), "create", "--bundle", str(bundle), cid],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # a pipe would stay open in the container
            timeout=60,
        )
        assert p.returncode == 0
        state = json.loads(out.read_text())
        assert state["status"] == "creating" and state["id"] == cid
        assert state["pid"] == oci.state(root, cid).pid
    finally:
        with contextlib.suppress(oci.ContainerNotFound):
            oci.delete(root, cid, force=True)


def test_init_dies_with_its_creator_during_set_up(
    make_bundle: Callable[..., Path], tmp_path: Path, cid: str
) -> None:
    """The init is a session leader (no longer in its creator's process group): until it is
    ready it must still die with the creator, e.g. a shim killed while a hook hangs."""
    import signal
    import time

    started = tmp_path / "hook-started"

    def edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)
        spec["hooks"] = {
            "createContainer": [
                {"path": "/bin/sh", "args": ["sh", "-c", f"touch {started}; exec sleep 60"]}
            ]
        }

    bundle = make_bundle(["true"], edit)
    root = tmp_path / "ours"
    procs = Path(f"/sys/fs/cgroup/pids/cri-test-oci/{cid}/cgroup.procs")
    creator = subprocess.Popen(
        [*ours_cli(), "--root", str(root), "create", "--bundle", str(bundle), cid],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(400):
            if started.exists():
                break
            time.sleep(0.05)
        assert started.exists() and len(procs.read_text().split()) == 2  # the init and its hook
        creator.send_signal(signal.SIGKILL)
        creator.wait()
        for _ in range(200):
            if not procs.read_text().split():
                break
            time.sleep(0.05)
        assert procs.read_text().split() == []
    finally:
        creator.kill()
        creator.wait()
        for d in Path("/sys/fs/cgroup").glob(f"*/cri-test-oci/{cid}"):
            d.rmdir()


def test_poststart_runs_after_the_user_process_was_executed(
    make_bundle: Callable[..., Path], oci_root: Path, cid: str
) -> None:
    """config.md: "called after the user-specified process is executed". The hook reads the exe
    of the pid on its stdin: already the container's sleep, not our init before its execve (runc
    1.1 runs poststart inside `create`; crun right after the fifo byte, which the init writes
    before its startContainer hooks). `start` itself returns after the execve too."""
    out = make_bundle(["true"]).parent / "poststart-seen"

    def edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)
        script = f"pid=$(sed 's/.*\"pid\": *\\([0-9]*\\).*/\\1/'); cat /proc/$pid/comm > {out}"
        spec["hooks"] = {
            # holds the init 0.3 s between the fifo byte and its execve
            "startContainer": [{"path": "/bin/sleep", "args": ["sleep", "0.3"]}],
            "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", script]}],
        }

    bundle = make_bundle(["sleep", "100"], edit)
    pid = oci.create(oci_root, cid, bundle)
    try:
        oci.start(oci_root, cid)
        assert Path(f"/proc/{pid}/comm").read_text() == "sleep\n"
        assert out.read_text() == "sleep\n"
    finally:
        oci.delete(oci_root, cid, force=True)
        os.waitpid(pid, 0)
