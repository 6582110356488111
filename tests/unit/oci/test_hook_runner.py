"""Running hooks (real /bin/sh programs, no container) and the state they are given."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from cri.oci.hooks import HookFailed, hook_state, run_hook, run_hooks
from cri.oci.spec import Hook

STATE = hook_state(
    oci_version="1.0.2",
    container_id="c1",
    status="creating",
    pid=42,
    bundle="/b",
    annotations={"a": "b"},
)


def _sh(script: str, env: tuple[str, ...] | None = None, timeout: int | None = None) -> Hook:
    return Hook("/bin/sh", ("sh", "-c", script), env, timeout)


def test_state_is_runc_shaped() -> None:
    assert STATE == {
        "ociVersion": "1.0.2",
        "id": "c1",
        "status": "creating",
        "pid": 42,
        "bundle": "/b",
        "annotations": {"a": "b"},
    }
    # omitempty, as specs.State marshals
    bare = hook_state(
        oci_version="1.0.2", container_id="c1", status="stopped", pid=0, bundle="/b", annotations={}
    )
    assert bare == {"ociVersion": "1.0.2", "id": "c1", "status": "stopped", "bundle": "/b"}


def test_hook_reads_state_argv_env_and_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("FROM_RUNTIME", "yes")
    run_hook(
        _sh(f'cat > {out}; echo "$0 $1 $FROM_RUNTIME $(pwd)" >> {out}.2', env=None),
        STATE,
        kind="createRuntime",
        index=0,
        cwd=str(tmp_path),
    )
    assert json.loads(out.read_text()) == STATE
    # env absent: the runtime's own environment (Go exec.Cmd with a nil Env)
    assert (tmp_path / "out.2").read_text() == f"sh  yes {tmp_path}\n"
    run_hook(_sh(f"env > {out}", env=("ONLY=1", "EQ=a=b")), STATE, kind="poststop", index=1)
    # env given: exactly that (dash adds its PWD)
    assert sorted(v for v in out.read_text().split() if not v.startswith("PWD=")) == [
        "EQ=a=b",
        "ONLY=1",
    ]


def test_args_default_to_the_path(tmp_path: Path) -> None:
    script = tmp_path / "hook"
    script.write_text(f'#!/bin/sh\necho "$0" > {tmp_path}/argv0\n')
    script.chmod(0o755)
    run_hook(Hook(str(script), (), None, None), STATE, kind="prestart", index=0)
    assert (tmp_path / "argv0").read_text() == f"{script}\n"


def test_failures_name_the_hook() -> None:
    with pytest.raises(HookFailed) as info:
        run_hook(_sh("echo out; echo err >&2; exit 4"), STATE, kind="createContainer", index=2)
    assert str(info.value) == (
        "error running createContainer hook #2 (/bin/sh): exit status 4, stdout: out, stderr: err"
    )
    with pytest.raises(HookFailed, match="signal 9"):
        run_hook(_sh("kill -9 $$"), STATE, kind="prestart", index=0)
    with pytest.raises(HookFailed, match="No such file"):
        run_hook(Hook("/no/such/hook", (), None, None), STATE, kind="prestart", index=0)


def test_timeout_kills_the_hook() -> None:
    t0 = time.monotonic()
    with pytest.raises(HookFailed, match="ran past specified timeout of 1s"):
        run_hook(_sh("sleep 30", timeout=1), STATE, kind="createRuntime", index=0)
    assert time.monotonic() - t0 < 5


def test_a_hook_that_ignores_stdin_is_fine() -> None:
    run_hook(_sh("exit 0"), {**STATE, "annotations": {"big": "x" * 200_000}}, kind="k", index=0)


def test_fatal_stops_at_the_first_failure_nonfatal_logs_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "log"
    hooks = {
        "prestart": (_sh(f"echo a >> {log}"), _sh("exit 1"), _sh(f"echo c >> {log}")),
        "createRuntime": (_sh(f"echo d >> {log}"),),
    }
    with pytest.raises(HookFailed, match="prestart hook #1"):
        run_hooks(hooks, ("prestart", "createRuntime"), STATE)
    assert log.read_text().split() == ["a"]
    log.unlink()
    with caplog.at_level(logging.WARNING, logger="cri.oci.hooks"):
        run_hooks(hooks, ("prestart", "createRuntime"), STATE, fatal=False)
    assert log.read_text().split() == ["a", "c", "d"]
    assert [r.getMessage()[:38] for r in caplog.records] == [
        "error running prestart hook #1 (/bin/s"
    ]


def test_default_env_is_for_hooks_without_env(tmp_path: Path) -> None:
    out = tmp_path / "env"
    run_hook(_sh(f"env > {out}"), STATE, kind="startContainer", index=0, default_env={"C": "1"})
    assert [v for v in out.read_text().split() if not v.startswith("PWD=")] == ["C=1"]
    run_hook(
        _sh(f"env > {out}", env=("H=2",)),
        STATE,
        kind="startContainer",
        index=0,
        default_env={"C": "1"},
    )
    assert [v for v in out.read_text().split() if not v.startswith("PWD=")] == ["H=2"]
