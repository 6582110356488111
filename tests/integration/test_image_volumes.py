"""Image volumes (Mount.image): an image's layers mounted read-only in a container, whole or a
sub path; the digest in ContainerStatus; removal of the image keeps what a container uses."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.integration.test_pod_lifecycle import code_of, container_config, pod_config
from tests.support.daemon import CriClient, DaemonProcess
from tests.support.leaks import mounts_under
from tests.support.oci_build import busybox_image, push_image
from tests.support.registry import LocalRegistry


@pytest.fixture
def cri(cri_v1: CriClient) -> CriClient:
    return cri_v1


@pytest.fixture(scope="module")
def layered(registry: LocalRegistry) -> str:
    """busybox with a second layer (whiteouts and an opaque dir): mounted by an overlay."""
    push_image(registry.host, "test/layered", "1.0", busybox_image(with_whiteouts=True))
    return f"{registry.host}/test/layered:1.0"


@pytest.fixture
def pod(cri: CriClient, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    config = pod_config(cri.api, tmp_path)
    sandbox_id = cri.runtime.RunPodSandbox(cri.api.RunPodSandboxRequest(
        config=config)).pod_sandbox_id
    yield sandbox_id, config
    cri.runtime.RemovePodSandbox(cri.api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))


def pull(cri: CriClient, ref: str) -> str:
    return str(cri.images.PullImage(cri.api.PullImageRequest(
        image=cri.api.ImageSpec(image=ref))).image_ref)


def create(cri: CriClient, pod: tuple[str, Any], image: str, volume: str, *,
           sub_path: str = "", readonly: bool = True) -> str:
    ctr = container_config(cri.api, image, ["sleep", "3600"])
    ctr.mounts.append(cri.api.Mount(container_path="/vol", readonly=readonly,
                                    image=cri.api.ImageSpec(image=volume),
                                    image_sub_path=sub_path))
    return str(cri.runtime.CreateContainer(cri.api.CreateContainerRequest(
        pod_sandbox_id=pod[0], sandbox_config=pod[1], config=ctr)).container_id)


def sh(cri: CriClient, container_id: str, script: str) -> Any:
    return cri.runtime.ExecSync(cri.api.ExecSyncRequest(container_id=container_id,
                                                        cmd=["sh", "-c", script], timeout=10))


@pytest.mark.parametrize("which", ["single-layer", "layered"])
def test_an_image_volume_is_mounted_read_only_with_its_digest(
        cri: CriClient, daemon: DaemonProcess, pod: tuple[str, Any], image: str, layered: str,
        which: str) -> None:
    volume = image if which == "single-layer" else layered
    digest = pull(cri, volume)
    container_id = create(cri, pod, image, volume)
    cri.runtime.StartContainer(cri.api.StartContainerRequest(container_id=container_id))
    status = cri.runtime.ContainerStatus(cri.api.ContainerStatusRequest(
        container_id=container_id)).status
    (mount,) = [m for m in status.mounts if m.container_path == "/vol"]
    assert mount.image.image == volume and mount.image.image_ref == digest
    assert sh(cri, container_id, "/vol/bin/busybox true").exit_code == 0  # executable
    assert sh(cri, container_id, "touch /vol/x").exit_code != 0
    listing = sh(cri, container_id, "ls /vol/etc /vol/opt/data 2>&1").stdout.decode()
    if which == "layered":  # the upper layer's whiteouts and opaque dir apply
        assert "motd" not in listing and "new.txt" in listing
    cri.runtime.RemoveContainer(cri.api.RemoveContainerRequest(container_id=container_id))
    # Unmounted from the trash just after the removal (cri/storage/trash.py).
    deadline = time.monotonic() + 10
    while [m for m in mounts_under(daemon.state) if "image-volumes" in m]:
        assert time.monotonic() < deadline, mounts_under(daemon.state)
        time.sleep(0.05)


def test_a_sub_path_and_its_refusals(cri: CriClient, pod: tuple[str, Any], image: str) -> None:
    pull(cri, image)
    container_id = create(cri, pod, image, image, sub_path="etc")
    cri.runtime.StartContainer(cri.api.StartContainerRequest(container_id=container_id))
    assert sh(cri, container_id, "cat /vol/passwd").stdout.startswith(b"root:")
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: create(cri, pod, image, image, sub_path="nope")) == invalid
    assert code_of(lambda: create(cri, pod, image, image, readonly=False)) == invalid
    assert code_of(lambda: create(cri, pod, image, "127.0.0.1:1/never/pulled:1")) == (
        grpc.StatusCode.NOT_FOUND)


def test_removing_the_image_keeps_the_volume_working(cri: CriClient, pod: tuple[str, Any],
                                                     image: str, layered: str) -> None:
    pull(cri, layered)
    container_id = create(cri, pod, image, layered)
    cri.runtime.StartContainer(cri.api.StartContainerRequest(container_id=container_id))
    cri.images.RemoveImage(cri.api.RemoveImageRequest(image=cri.api.ImageSpec(image=layered)))
    assert sh(cri, container_id, "cat /vol/opt/data/new.txt").stdout == b"upper new\n"
