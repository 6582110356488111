"""ExecSync as exec probes use it: a timeout kills what it started, output is bounded, and a
container that is not running is refused. Run on the in-tree executor and on runc (the oracle)."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from cri.task.exec_output import OUTPUT_LIMIT, TRUNCATED
from tests.integration.test_pod_lifecycle import code_of, container_config, pod_config
from tests.support.daemon import CriClient, DaemonProcess, running_daemon

RUNC = shutil.which("runc")


@pytest.fixture(scope="module", params=["fork-server", "cold"])
def daemon(request: pytest.FixtureRequest, pause_binary: Path) -> Iterator[DaemonProcess]:
    """The in-tree executor's exec is forked from the shim fork server, or (without one) a new
    interpreter: both are run."""
    config = f'[runtimes.runc]\nbinary = "{RUNC}"\n' if RUNC else ""
    if request.param == "cold":
        config = "shim_fork_server = false\n" + config
    with running_daemon(pause_binary, config) as process:
        yield process


@pytest.fixture
def cri(cri_v1: CriClient) -> CriClient:
    return cri_v1  # what ExecSync does is one implementation; the alpha surface is tested elsewhere


@pytest.fixture(params=["", "runc"])
def running(request: pytest.FixtureRequest, cri: CriClient, image: str,
            tmp_path: Path) -> Iterator[str]:
    """A running container under the in-tree executor or runc."""
    handler = request.param
    if handler and RUNC is None:
        pytest.fail("runc is not installed: tests/install-and-run.sh installs it")
    api = cri.api
    config = pod_config(api, tmp_path)
    sandbox_id = cri.runtime.RunPodSandbox(api.RunPodSandboxRequest(
        config=config, runtime_handler=handler)).pod_sandbox_id
    try:
        container_id = cri.runtime.CreateContainer(api.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, sandbox_config=config,
            config=container_config(api, image, ["sleep", "3600"]))).container_id
        cri.runtime.StartContainer(api.StartContainerRequest(container_id=container_id))
        yield container_id
    finally:
        cri.runtime.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))


def exec_sync(cri: CriClient, container_id: str, cmd: list[str], timeout: int = 10) -> Any:
    return cri.runtime.ExecSync(cri.api.ExecSyncRequest(container_id=container_id, cmd=cmd,
                                                        timeout=timeout))


def test_a_timeout_kills_what_it_started(cri: CriClient, running: str) -> None:
    """critest's "execSync with timeout": the probe's process must not outlive its deadline."""
    marker = f"{secrets.randbelow(10**6) + 10**6}"
    assert code_of(lambda: exec_sync(cri, running, ["sleep", marker], timeout=1)) == (
        grpc.StatusCode.DEADLINE_EXCEEDED)
    assert other_sleeps(cri, running, zombies=True) == b""
    # and whatever it forked goes too: the whole exec session is killed, not just its leader
    code = code_of(lambda: exec_sync(cri, running, ["sh", "-c", f"sleep {marker} & wait"],
                                     timeout=1))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    # The orphan's zombie is the container's init to reap (this init, sleep, never does).
    assert other_sleeps(cri, running, zombies=False) == b""


def other_sleeps(cri: CriClient, container_id: str, zombies: bool) -> bytes:
    """Every sleep but the container's own (pid 1). Zombies too where asked: critest's `pgrep
    sleep` runs right after the timeout and would see one."""
    live = "" if zombies else ' && $2 !~ /Z/'
    script = f"set -o pipefail; ps -o pid,stat,comm | awk '$1 != 1 && $3 == \"sleep\"{live}'"
    result = exec_sync(cri, container_id, ["sh", "-c", script])
    assert (result.exit_code, result.stderr) == (0, b"")  # ps knew its columns
    return bytes(result.stdout)

def test_output_is_capped_and_marked(cri: CriClient, running: str) -> None:
    over = OUTPUT_LIMIT // (1024 * 1024) + 1
    script = f"dd if=/dev/zero bs=1048576 count={over} 2>/dev/null; echo small >&2; exit 7"
    result = exec_sync(cri, running, ["sh", "-c", script], timeout=60)
    assert result.exit_code == 7
    assert len(result.stdout) == OUTPUT_LIMIT + len(TRUNCATED)
    assert result.stdout.endswith(TRUNCATED)
    assert result.stderr == b"small\n"


def test_a_stopped_container_is_refused(cri: CriClient, running: str) -> None:
    cri.runtime.StopContainer(cri.api.StopContainerRequest(container_id=running, timeout=0))
    assert code_of(lambda: exec_sync(cri, running, ["true"])) == (
        grpc.StatusCode.FAILED_PRECONDITION)


def test_no_exec_files_are_left(cri: CriClient, daemon: DaemonProcess, running: str) -> None:
    exec_sync(cri, running, ["true"])
    code_of(lambda: exec_sync(cri, running, ["sleep", "60"], timeout=1))
    state = daemon.state
    assert [p for p in state.rglob("exec-*") if p.is_file()] == []
    assert os.path.isdir(state)
