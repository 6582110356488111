"""Recursive read-only mounts (Mount.recursive_read_only): a read-only bind whose submounts are
read-only too, on the in-tree executor and on runc; what may not be asked is refused."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.integration.test_pod_lifecycle import code_of, container_config, pod_config
from tests.support.daemon import CriClient, DaemonProcess, running_daemon

RUNC = shutil.which("runc")


@pytest.fixture(scope="module")
def daemon(pause_binary: Path) -> Iterator[DaemonProcess]:
    with running_daemon(pause_binary, f'[runtimes.runc]\nbinary = "{RUNC}"\n') as process:
        yield process


@pytest.fixture
def cri(cri_v1: CriClient) -> CriClient:
    return cri_v1


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A host directory with a tmpfs mounted under it (kubelet's volumes often nest so)."""
    root = tmp_path / "vol"
    (root / "tmpfs").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "nested", str(root / "tmpfs")], check=True)
    yield root
    subprocess.run(["umount", "-l", str(root / "tmpfs")], check=False)


def features(cri: CriClient) -> dict[str, bool]:
    return {h.name: h.features.recursive_read_only_mounts
            for h in cri.runtime.Status(cri.api.StatusRequest()).runtime_handlers}


def make(cri: CriClient, image: str, tmp_path: Path, handler: str, mount: Any) -> str:
    config = pod_config(cri.api, tmp_path)
    sandbox_id = cri.runtime.RunPodSandbox(cri.api.RunPodSandboxRequest(
        config=config, runtime_handler=handler)).pod_sandbox_id
    ctr = container_config(cri.api, image, ["sleep", "3600"])
    ctr.mounts.append(mount)
    container_id = cri.runtime.CreateContainer(cri.api.CreateContainerRequest(
        pod_sandbox_id=sandbox_id, sandbox_config=config, config=ctr)).container_id
    cri.runtime.StartContainer(cri.api.StartContainerRequest(container_id=container_id))
    return str(container_id)


@pytest.mark.parametrize("handler", ["", "runc"])
@pytest.mark.parametrize("recursive", [False, True])
def test_submounts_are_read_only_only_when_recursive(
        cri: CriClient, image: str, tmp_path: Path, volume: Path, handler: str,
        recursive: bool) -> None:
    assert features(cri)[handler] is True
    mount = cri.api.Mount(container_path="/mnt", host_path=str(volume), readonly=True,
                          recursive_read_only=recursive)
    container_id = make(cri, image, tmp_path, handler, mount)
    result = cri.runtime.ExecSync(cri.api.ExecSyncRequest(
        container_id=container_id, timeout=10,
        cmd=["sh", "-c", "touch /mnt/top 2>&1; touch /mnt/tmpfs/file 2>&1; echo done"]))
    lines = result.stdout.decode().splitlines()
    assert "Read-only file system" in lines[0]  # the bind itself is read-only either way
    if recursive:
        assert "Read-only file system" in lines[1]
    else:
        assert lines[1] == "done" and (volume / "tmpfs" / "file").exists()


@pytest.mark.parametrize("propagation", ["PROPAGATION_HOST_TO_CONTAINER",
                                         "PROPAGATION_BIDIRECTIONAL"])
def test_what_cannot_stay_read_only_is_refused(cri: CriClient, image: str, tmp_path: Path,
                                               volume: Path, propagation: str) -> None:
    api = cri.api
    propagated = api.Mount(container_path="/mnt", host_path=str(volume), readonly=True,
                           recursive_read_only=True, propagation=getattr(api, propagation))
    writable = api.Mount(container_path="/mnt", host_path=str(volume), readonly=False,
                         recursive_read_only=True)
    for mount in (propagated, writable):
        assert code_of(lambda m=mount: make(cri, image, tmp_path, "", m)) == (
            grpc.StatusCode.INVALID_ARGUMENT)
