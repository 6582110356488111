"""GetContainerEvents (evented PLEG) through the real daemon: every transition once, in order, to
every subscriber, with the pod's status; exits noticed when they happen, daemon restarts too."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.integration.test_pod_lifecycle import container_config, pod_config
from tests.support.daemon import CriClient


@pytest.fixture
def cri(cri_v1: CriClient) -> CriClient:
    return cri_v1  # v1alpha2 has no GetContainerEvents


class Subscriber:
    """One GetContainerEvents stream, read on its own thread as kubelet does."""

    def __init__(self, cri: CriClient) -> None:
        self.events: list[tuple[float, Any]] = []
        self._call = cri.runtime.GetContainerEvents(cri.api.GetEventsRequest())
        self._cond = threading.Condition()
        self.error: grpc.RpcError | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._call:
                with self._cond:
                    self.events.append((time.monotonic(), event))
                    self._cond.notify_all()
        except grpc.RpcError as exc:
            self.error = exc

    def of(self, object_id: str) -> list[Any]:
        with self._cond:
            return [e for _, e in self.events if e.container_id == object_id]

    def wait_for(self, object_id: str, count: int, timeout: float = 10) -> list[Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len([1 for _, e in self.events if e.container_id == object_id]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        return self.of(object_id)

    def arrival(self, object_id: str, kind: int) -> float:
        with self._cond:
            return next(t for t, e in self.events
                        if e.container_id == object_id and e.container_event_type == kind)

    def close(self) -> None:
        self._call.cancel()
        self._thread.join(5)


@pytest.fixture
def subscribers(cri: CriClient) -> Iterator[list[Subscriber]]:
    subs = [Subscriber(cri), Subscriber(cri)]
    time.sleep(0.3)  # both streams open before the first transition
    yield subs
    for sub in subs:
        sub.close()


def kinds(api: Any, events: list[Any]) -> list[str]:
    return [api.ContainerEventType.Name(e.container_event_type) for e in events]


def test_lifecycle_reaches_two_subscribers_in_order(
    cri: CriClient, image: str, subscribers: list[Subscriber], tmp_path: Path
) -> None:
    api, rt = cri.api, cri.runtime
    config = pod_config(api, tmp_path)
    sandbox_id = rt.RunPodSandbox(api.RunPodSandboxRequest(config=config)).pod_sandbox_id
    ctr = container_config(api, image, ["sh", "-c", "sleep 1"], name="short")
    container_id = rt.CreateContainer(api.CreateContainerRequest(
        pod_sandbox_id=sandbox_id, sandbox_config=config, config=ctr)).container_id
    rt.StartContainer(api.StartContainerRequest(container_id=container_id))
    started = time.monotonic()
    # Nobody asks for a status: the exit must be noticed by the daemon itself.
    for sub in subscribers:
        sub.wait_for(container_id, 3)
    for sub in subscribers:
        stopped_after = sub.arrival(container_id, api.CONTAINER_STOPPED_EVENT) - started
        assert stopped_after < 1 + 1.0, stopped_after
    rt.RemoveContainer(api.RemoveContainerRequest(container_id=container_id))
    rt.RemoveContainer(api.RemoveContainerRequest(container_id=container_id))  # idempotent
    rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))
    rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))
    rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))
    for sub in subscribers:
        events = sub.wait_for(container_id, 4)
        assert kinds(api, events) == ["CONTAINER_CREATED_EVENT", "CONTAINER_STARTED_EVENT",
                                      "CONTAINER_STOPPED_EVENT", "CONTAINER_DELETED_EVENT"]
        assert all(e.pod_sandbox_status.id == sandbox_id for e in events)
        assert [e.created_at for e in events] == sorted(e.created_at for e in events)
        created, _, stopped, deleted = events
        assert {s.id for s in created.containers_statuses} == {container_id}
        [status] = [s for s in stopped.containers_statuses if s.id == container_id]
        assert status.state == api.CONTAINER_EXITED and status.exit_code == 0
        assert container_id not in {s.id for s in deleted.containers_statuses}
        pod_events = sub.wait_for(sandbox_id, 4)
        assert kinds(api, pod_events) == ["CONTAINER_CREATED_EVENT", "CONTAINER_STARTED_EVENT",
                                          "CONTAINER_STOPPED_EVENT", "CONTAINER_DELETED_EVENT"]
        assert pod_events[1].pod_sandbox_status.state == api.SANDBOX_READY
        assert pod_events[2].pod_sandbox_status.state == api.SANDBOX_NOTREADY


def test_failed_create_announces_nothing(cri: CriClient, subscribers: list[Subscriber],
                                         tmp_path: Path) -> None:
    api, rt = cri.api, cri.runtime
    config = pod_config(api, tmp_path)
    sandbox_id = rt.RunPodSandbox(api.RunPodSandboxRequest(config=config)).pod_sandbox_id
    ctr = container_config(api, "no-such-image:latest", ["true"])
    with pytest.raises(grpc.RpcError):
        rt.CreateContainer(api.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, sandbox_config=config, config=ctr))
    rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))
    for sub in subscribers:
        sub.wait_for(sandbox_id, 4)
        assert {e.container_id for _, e in sub.events} == {sandbox_id}


def test_pause_death_is_announced(cri: CriClient, subscribers: list[Subscriber],
                                  tmp_path: Path) -> None:
    import json
    import os
    import signal

    api, rt = cri.api, cri.runtime
    config = pod_config(api, tmp_path)
    sandbox_id = rt.RunPodSandbox(api.RunPodSandboxRequest(config=config)).pod_sandbox_id
    pid = json.loads(rt.PodSandboxStatus(api.PodSandboxStatusRequest(
        pod_sandbox_id=sandbox_id, verbose=True)).info["info"])["pid"]
    os.kill(pid, signal.SIGKILL)
    for sub in subscribers:
        events = sub.wait_for(sandbox_id, 3)
        assert kinds(api, events)[-1] == "CONTAINER_STOPPED_EVENT"
        assert events[-1].pod_sandbox_status.state == api.SANDBOX_NOTREADY
    rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))
