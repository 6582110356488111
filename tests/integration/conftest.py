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
