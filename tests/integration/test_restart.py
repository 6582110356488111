"""Containers keep running, and state stays intact, while the daemon restarts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_pod_lifecycle import container_config, pod_config, wait_for_state
from tests.support.daemon import CriClient, DaemonProcess, running_daemon


@pytest.fixture
def restartable(pause_binary: Path) -> Iterator[DaemonProcess]:
    with running_daemon(pause_binary) as process:
        yield process


def start_in_one_pod(cri: CriClient, image: str, tmp_path: Path,
                     commands: dict[str, list[str]]) -> tuple[str, dict[str, str]]:
    """A new pod running one container per name: the pod's id, and theirs by name."""
    api = cri.api
    cri.images.PullImage(api.PullImageRequest(image=api.ImageSpec(image=image)))
    config = pod_config(api, tmp_path)
    pod = cri.runtime.RunPodSandbox(api.RunPodSandboxRequest(config=config)).pod_sandbox_id
    ids = {}
    for name, command in commands.items():
        ids[name] = cri.runtime.CreateContainer(api.CreateContainerRequest(
            pod_sandbox_id=pod, sandbox_config=config,
            config=container_config(api, image, command, name=name))).container_id
        cri.runtime.StartContainer(api.StartContainerRequest(container_id=ids[name]))
    return pod, ids


def test_containers_survive_a_daemon_restart(restartable: DaemonProcess, busybox_ref: str,
                                             tmp_path: Path) -> None:
    cri = CriClient(restartable.socket)
    api = cri.api
    pod, ids = start_in_one_pod(cri, busybox_ref, tmp_path, {
        "long": ["sh", "-c", "echo before; sleep 1; echo during; exec sleep 1000"],
        "short": ["sh", "-c", "sleep 1; exit 5"]})
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


def test_exits_after_a_restart_are_announced(restartable: DaemonProcess, busybox_ref: str,
                                             tmp_path: Path) -> None:
    from tests.integration.test_events import Subscriber

    cri = CriClient(restartable.socket)
    api = cri.api
    _, ids = start_in_one_pod(cri, busybox_ref, tmp_path, {"later": ["sleep", "3"]})
    container_id = ids["later"]
    cri.close()
    restartable.stop()
    restartable.start()

    cri = CriClient(restartable.socket)
    subscriber = Subscriber(cri)
    try:
        # The monitor outlived the old daemon; the new one watches the task it recovered.
        [event] = subscriber.wait_for(container_id, 1, timeout=10)
        assert event.container_event_type == api.CONTAINER_STOPPED_EVENT
        [status] = [s for s in event.containers_statuses if s.id == container_id]
        assert status.state == api.CONTAINER_EXITED
    finally:
        subscriber.close()
        cri.close()
