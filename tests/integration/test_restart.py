"""Containers keep running, and state stays intact, while the daemon restarts."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import _child_cgroups, _workdir, remove_everything
from tests.integration.test_pod_lifecycle import container_config, pod_config, wait_for_state
from tests.support.daemon import CriClient, DaemonProcess
from tests.support.leaks import cgroups_under, mounts_under, processes_mentioning


@pytest.fixture
def restartable(pause_binary: Path) -> Iterator[DaemonProcess]:
    workdir = _workdir()
    process = DaemonProcess(workdir, pause_binary)
    process.start()
    try:
        yield process
    finally:
        if process.proc is None or process.proc.poll() is not None:
            process.start()
        client = CriClient(process.socket)
        try:
            remove_everything(client)
        finally:
            client.close()
            process.stop()
        leftovers = [*mounts_under(workdir), *_child_cgroups(process.cgroup_parent),
                     *processes_mentioning(str(workdir))]
        for path in cgroups_under(process.cgroup_parent):
            Path(path).rmdir()
        shutil.rmtree(workdir, ignore_errors=True)
        assert leftovers == []


def test_containers_survive_a_daemon_restart(restartable: DaemonProcess, busybox_ref: str,
                                             tmp_path: Path) -> None:
    cri = CriClient(restartable.socket)
    api = cri.api
    cri.images.PullImage(api.PullImageRequest(image=api.ImageSpec(image=busybox_ref)))
    config = pod_config(api, tmp_path)
    pod = cri.runtime.RunPodSandbox(api.RunPodSandboxRequest(config=config)).pod_sandbox_id
    ids = {}
    for name, script in (("long", "echo before; sleep 1; echo during; exec sleep 1000"),
                         ("short", "sleep 1; exit 5")):
        ids[name] = cri.runtime.CreateContainer(api.CreateContainerRequest(
            pod_sandbox_id=pod, sandbox_config=config,
            config=container_config(api, busybox_ref, ["sh", "-c", script], name=name),
        )).container_id
        cri.runtime.StartContainer(api.StartContainerRequest(container_id=ids[name]))
    cri.close()

    restartable.stop()
    time.sleep(1.5)  # "short" exits and "long" logs while no daemon runs
    restartable.start()

    cri = CriClient(restartable.socket)
    try:
        status = cri.runtime.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod))
        assert status.status.state == api.SANDBOX_READY
        long = wait_for_state(cri, ids["long"], api.CONTAINER_RUNNING)
        assert long.state == api.CONTAINER_RUNNING
        short = wait_for_state(cri, ids["short"], api.CONTAINER_EXITED)
        assert (short.state, short.exit_code) == (api.CONTAINER_EXITED, 5)
        result = cri.runtime.ExecSync(api.ExecSyncRequest(container_id=ids["long"],
                                                          cmd=["echo", "still here"], timeout=10))
        assert result.stdout == b"still here\n"
        logged = (tmp_path / "long.log").read_text()
        assert "stdout F before" in logged and "stdout F during" in logged
    finally:
        cri.close()
