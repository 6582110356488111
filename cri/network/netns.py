"""Pinned network namespaces (bind mounts of /proc/self/ns/net), as `ip netns` and CNI expect.

A namespace is made by a short exec'd helper (`cri.network.pin`): unshare(2) would move the calling
thread into it, and the daemon must never fork without exec.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from cri.storage.mounts import unmount
from cri.subprocesses import helper_env, module_argv


def create_netns(path: Path) -> None:
    """Create a new network namespace, pinned at `path`, with its loopback up."""
    path.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        module_argv("cri.network.pin", str(path), site=False),
        capture_output=True,
        text=True,
        timeout=30,
        env=helper_env(),
    )
    if result.returncode != 0:
        remove_netns(path)
        raise OSError(f"creating network namespace {path}: {result.stderr.strip()}")


def remove_netns(path: Path) -> None:
    """Unpin and delete; safe to call on a path that was never (fully) created."""
    unmount(path)
    path.unlink(missing_ok=True)
