"""What each runtime handler can do, for Status's runtime_handlers and for refusing what it
cannot: asked once per handler, through the OCI `features` command (runc 1.1+, crun, ours)."""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
from typing import Any

from cri.config import RuntimeHandler

log = logging.getLogger(__name__)


def _kernel_at_least(major: int, minor: int) -> bool:
    try:
        parts = os.uname().release.split(".")
        return (int(parts[0]), int(parts[1].split("-")[0])) >= (major, minor)
    except (ValueError, IndexError):
        return False


@functools.cache
def _features(binary: str) -> dict[str, Any]:
    try:
        result = subprocess.run([binary, "features"], capture_output=True, text=True, timeout=10)
        data = json.loads(result.stdout) if result.returncode == 0 else {}
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        log.info("%s features: %s", binary, exc)
        data = {}
    return data if isinstance(data, dict) else {}


def recursive_read_only(handler: RuntimeHandler) -> bool:
    """rro needs mount_setattr (Linux 5.12) and a runtime that knows the option."""
    if not _kernel_at_least(5, 12):
        return False
    if not handler.binary:
        return True  # the in-tree executor (cri.oci.mounts.RECURSIVE)
    return "rro" in (_features(handler.binary).get("mountOptions") or [])


def user_namespaces(handler: RuntimeHandler) -> bool:
    """Pod user namespaces: the in-tree executor's (cri.oci.userns). runc and crun can too,
    but are not offered: joining the pod's namespace by path is not yet checked against them."""
    return not handler.binary and os.path.exists("/proc/self/ns/user")
