"""Session-wide pytest fixtures: a local registry, the busybox test image in it, and the pause
binary compiled the way the install compiles it.

Loaded by `tests/conftest.py` (`pytest_plugins`), so every test module can ask for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cri.sandbox.pause import compile_pause
from tests.support.oci_build import busybox_image, push_image
from tests.support.registry import LocalRegistry

BUSYBOX_REPO = "test/busybox"
BUSYBOX_TAG = "1.0"


@pytest.fixture(scope="session")
def registry() -> Iterator[LocalRegistry]:
    """A running docker-registry on 127.0.0.1 (plain HTTP, no auth), stopped at session end."""
    with LocalRegistry() as reg:
        yield reg


@pytest.fixture(scope="session")
def busybox_ref(registry: LocalRegistry) -> str:
    """The busybox test image pushed to `registry`: "127.0.0.1:PORT/test/busybox:1.0"."""
    push_image(registry.host, BUSYBOX_REPO, BUSYBOX_TAG, busybox_image())
    return f"{registry.host}/{BUSYBOX_REPO}:{BUSYBOX_TAG}"


@pytest.fixture(scope="session")
def pause_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_pause(tmp_path_factory.mktemp("pause") / "pause")
