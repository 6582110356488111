"""Fixtures that run the real daemon against a real registry, and check nothing leaks."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cri.sandbox.pause import compile_pause
from tests.support.daemon import CriClient, DaemonProcess
from tests.support.leaks import cgroups_under, mounts_under, processes_mentioning


@pytest.fixture(scope="session")
def pause_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_pause(tmp_path_factory.mktemp("pause") / "pause")


def _workdir() -> Path:
    # Short paths: overlay mount options must fit in one page.
    return Path(tempfile.mkdtemp(prefix="cri-", dir="/tmp"))


def remove_everything(client: CriClient) -> None:
    api = client.api
    for sandbox in client.runtime.ListPodSandbox(api.ListPodSandboxRequest()).items:
        client.runtime.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=sandbox.id))
        client.runtime.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id))
    for container in client.runtime.ListContainers(api.ListContainersRequest()).containers:
        client.runtime.RemoveContainer(api.RemoveContainerRequest(container_id=container.id))


def _child_cgroups(parent: str) -> list[str]:
    found = []
    for path in cgroups_under(parent):
        found += [str(p) for p in Path(path).iterdir() if p.is_dir()]
    return found


@pytest.fixture(scope="module")
def daemon(pause_binary: Path) -> Iterator[DaemonProcess]:
    workdir = _workdir()
    process = DaemonProcess(workdir, pause_binary)
    process.start()
    try:
        yield process
    finally:
        client = CriClient(process.socket)
        try:
            remove_everything(client)
        finally:
            client.close()
            process.stop()
        leftovers = {
            "mounts": mounts_under(workdir),
            "cgroups": _child_cgroups(process.cgroup_parent),
            "netns": [str(p) for p in (process.state / "netns").glob("*")],
            "processes": processes_mentioning(str(workdir)),
        }
        for path in cgroups_under(process.cgroup_parent):
            Path(path).rmdir()
        log = process.read_log()
        shutil.rmtree(workdir, ignore_errors=True)
        assert not any(leftovers.values()), f"left behind: {leftovers}\n{log}"


@pytest.fixture(params=["v1", "v1alpha2"])
def cri(request: pytest.FixtureRequest, daemon: DaemonProcess) -> Iterator[CriClient]:
    client = CriClient(daemon.socket, request.param)
    try:
        yield client
    finally:
        client.close()
