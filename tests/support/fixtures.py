"""Session-wide pytest fixtures: a local registry, the busybox test image in it, the pause
binary compiled the way the install compiles it, and the removal of the executor's shared cgroup
parents when the session ends.

Loaded by `tests/conftest.py` (`pytest_plugins`), so every test module can ask for them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from cri.sandbox.pause import compile_pause
from tests.support.oci_build import busybox_image, push_image
from tests.support.registry import LocalRegistry

# The parents the executor's tests share (their specs' cgroupsPath, and cri-oci's default): each
# test removes its own cgroup and checks nothing is left under it, but the parent outlives them.
SHARED_CGROUP_PARENTS = ("cri-oci", "cri-test-oci")

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


@pytest.fixture(scope="session", autouse=True)
def shared_cgroup_parents_removed() -> Iterator[None]:
    """At the end, rmdir the shared parents in every hierarchy, v1 and v2, where they are empty
    (one that still holds a cgroup is left: the per-test checks name those)."""
    yield
    root = Path("/sys/fs/cgroup")
    for name in SHARED_CGROUP_PARENTS:
        for parent in [*root.glob(name), *root.glob(f"*/{name}")]:
            with contextlib.suppress(OSError):  # gone (an alias such as cpu,cpuacct) or busy
                parent.rmdir()
