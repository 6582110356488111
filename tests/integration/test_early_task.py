"""CreateContainer begins the task; StartContainer finishes what it began (container/start.py).

Each test checks one way the early task must be finished or thrown away, against the real
daemon: a start, a failed creation, a stop, a resource update, a removal, a restart; and that
`create_tasks_early = false` still creates at the start.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.integration.test_pod_lifecycle import container_config, pod_config, wait_for_state
from tests.support.daemon import CriClient, DaemonProcess, running_daemon
from tests.support.leaks import processes_mentioning


@pytest.fixture(scope="module")
def daemon(pause_binary: Path) -> Iterator[DaemonProcess]:
    with running_daemon(pause_binary) as process:
        yield process


@pytest.fixture
def cri(daemon: DaemonProcess) -> Iterator[CriClient]:
    client = CriClient(daemon.socket)
    yield client
    client.close()


@pytest.fixture
def pod(cri: CriClient, busybox_ref: str, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    api = cri.api
    cri.images.PullImage(api.PullImageRequest(image=api.ImageSpec(image=busybox_ref)))
    config = pod_config(api, tmp_path)
    sandbox_id = cri.runtime.RunPodSandbox(api.RunPodSandboxRequest(config=config)).pod_sandbox_id
    yield sandbox_id, config
    cri.runtime.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))
    cri.runtime.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))


def create(cri: CriClient, pod: tuple[str, Any], image: str, command: list[str],
           name: str = "app") -> str:
    sandbox_id, config = pod
    return str(cri.runtime.CreateContainer(cri.api.CreateContainerRequest(
        pod_sandbox_id=sandbox_id, sandbox_config=config,
        config=container_config(cri.api, image, command, name=name))).container_id)


def task_exists(daemon: DaemonProcess, container_id: str, timeout: float = 10) -> bool:
    """Whether the OCI runtime has (or, within `timeout`, gets) a task for the container."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (daemon.state / "oci" / container_id / "state.json").exists():
            return True
        time.sleep(0.02)
    return False


def shims_of(container_id: str) -> list[str]:
    return processes_mentioning(container_id)


def test_create_begins_the_task_and_start_runs_it(daemon: DaemonProcess, cri: CriClient,
                                                  pod: tuple[str, Any], busybox_ref: str,
                                                  tmp_path: Path) -> None:
    cid = create(cri, pod, busybox_ref, ["sh", "-c", "echo hello; exec sleep 1000"])
    assert task_exists(daemon, cid)
    status = cri.runtime.ContainerStatus(cri.api.ContainerStatusRequest(container_id=cid)).status
    assert status.state == cri.api.CONTAINER_CREATED and status.started_at == 0
    time.sleep(0.3)
    assert not (tmp_path / "app.log").exists() or "hello" not in (tmp_path / "app.log").read_text()
    cri.runtime.StartContainer(cri.api.StartContainerRequest(container_id=cid))
    assert wait_for_state(cri, cid, cri.api.CONTAINER_RUNNING).state == cri.api.CONTAINER_RUNNING
    deadline = time.monotonic() + 5
    while "hello" not in (tmp_path / "app.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "stdout F hello" in (tmp_path / "app.log").read_text()


def test_a_failed_early_creation_is_the_start_error(daemon: DaemonProcess, cri: CriClient,
                                                    pod: tuple[str, Any],
                                                    busybox_ref: str) -> None:
    cid = create(cri, pod, busybox_ref, ["/no/such/binary"])
    with pytest.raises(grpc.RpcError) as info:
        cri.runtime.StartContainer(cri.api.StartContainerRequest(container_id=cid))
    assert "/no/such/binary" in (info.value.details() or "")
    status = cri.runtime.ContainerStatus(cri.api.ContainerStatusRequest(container_id=cid)).status
    assert status.reason == "StartError" and status.exit_code == 128
    cri.runtime.RemoveContainer(cri.api.RemoveContainerRequest(container_id=cid))
    assert shims_of(cid) == []


@pytest.mark.parametrize("how", ["remove", "stop", "update"])
def test_an_early_task_is_discarded_when_its_start_would_differ(
        daemon: DaemonProcess, cri: CriClient, pod: tuple[str, Any], busybox_ref: str,
        how: str) -> None:
    api = cri.api
    cid = create(cri, pod, busybox_ref, ["sleep", "1000"])
    assert task_exists(daemon, cid)
    if how == "remove":
        cri.runtime.RemoveContainer(api.RemoveContainerRequest(container_id=cid))
        assert not (daemon.state / "oci" / cid).exists()
        assert shims_of(cid) == []
        return
    if how == "stop":
        cri.runtime.StopContainer(api.StopContainerRequest(container_id=cid, timeout=0))
    else:
        cri.runtime.UpdateContainerResources(api.UpdateContainerResourcesRequest(
            container_id=cid, linux=api.LinuxContainerResources(memory_limit_in_bytes=64 << 20)))
    assert not (daemon.state / "oci" / cid).exists()
    status = cri.runtime.ContainerStatus(api.ContainerStatusRequest(container_id=cid)).status
    assert status.state == api.CONTAINER_CREATED
    # The start creates a new task, from the spec as it now is.
    cri.runtime.StartContainer(api.StartContainerRequest(container_id=cid))
    assert wait_for_state(cri, cid, api.CONTAINER_RUNNING).state == api.CONTAINER_RUNNING
    if how == "update":
        limit = cri.runtime.ExecSync(api.ExecSyncRequest(
            container_id=cid, cmd=["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"],
            timeout=10))
        assert limit.stdout.strip() == str(64 << 20).encode()


def test_a_restart_between_create_and_start(pause_binary: Path, busybox_ref: str,
                                            tmp_path: Path) -> None:
    with running_daemon(pause_binary) as daemon:
        cri = CriClient(daemon.socket)
        api = cri.api
        cri.images.PullImage(api.PullImageRequest(image=api.ImageSpec(image=busybox_ref)))
        config = pod_config(api, tmp_path)
        pod = cri.runtime.RunPodSandbox(api.RunPodSandboxRequest(config=config)).pod_sandbox_id
        cid = create(cri, (pod, config), busybox_ref, ["sleep", "1000"])
        assert task_exists(daemon, cid)
        cri.close()
        daemon.stop()
        daemon.start()
        cri = CriClient(daemon.socket)
        try:
            assert not (daemon.state / "oci" / cid).exists()  # recovery forgot the early task
            cri.runtime.StartContainer(api.StartContainerRequest(container_id=cid))
            assert wait_for_state(cri, cid, api.CONTAINER_RUNNING).state == api.CONTAINER_RUNNING
        finally:
            cri.close()


def test_without_early_creation_the_start_creates(pause_binary: Path, busybox_ref: str,
                                                  tmp_path: Path) -> None:
    with running_daemon(pause_binary, "create_tasks_early = false\n") as daemon:
        cri = CriClient(daemon.socket)
        try:
            api = cri.api
            cri.images.PullImage(api.PullImageRequest(image=api.ImageSpec(image=busybox_ref)))
            config = pod_config(api, tmp_path)
            pod = cri.runtime.RunPodSandbox(
                api.RunPodSandboxRequest(config=config)).pod_sandbox_id
            cid = create(cri, (pod, config), busybox_ref, ["sleep", "1000"])
            assert not task_exists(daemon, cid, timeout=0.5)
            cri.runtime.StartContainer(api.StartContainerRequest(container_id=cid))
            assert wait_for_state(cri, cid, api.CONTAINER_RUNNING).state == \
                api.CONTAINER_RUNNING
        finally:
            cri.close()
