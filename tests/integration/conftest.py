"""The real daemon against the real registry; every test module gets a fresh one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import CriClient, DaemonProcess, running_daemon


@pytest.fixture(scope="module")
def daemon(pause_binary: Path) -> Iterator[DaemonProcess]:
    with running_daemon(pause_binary) as process:
        yield process


@pytest.fixture(params=["v1", "v1alpha2"])
def cri(request: pytest.FixtureRequest, daemon: DaemonProcess) -> Iterator[CriClient]:
    client = CriClient(daemon.socket, request.param)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def cri_v1(daemon: DaemonProcess) -> Iterator[CriClient]:
    """For modules whose RPCs the alpha API lacks, or whose ground truth needs only one version:
    they override `cri` with this."""
    client = CriClient(daemon.socket, "v1")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def image(cri: CriClient, busybox_ref: str) -> str:
    """busybox, pulled through whichever `cri` the module uses."""
    cri.images.PullImage(cri.api.PullImageRequest(image=cri.api.ImageSpec(image=busybox_ref)))
    return busybox_ref
