"""`features`: what this executor implements, in runc's `features` JSON shape
(runtime-spec features.md): what the executor supports, not what this host offers."""

from __future__ import annotations

from typing import Any

from .spec import HOOK_KINDS, NAMESPACE_TYPES

OCI_VERSION_MIN = "1.0.0"
OCI_VERSION_MAX = "1.1.0"


def _mount_options() -> list[str]:
    from .mounts import _FLAGS, _IGNORED, PROPAGATION, RECURSIVE

    return sorted({*_FLAGS, *PROPAGATION, *_IGNORED, *RECURSIVE})


def _seccomp() -> dict[str, Any]:
    import importlib
    import importlib.util

    enabled = importlib.util.find_spec("cri.oci.seccomp") is not None
    result: dict[str, Any] = {"enabled": enabled}
    if enabled:
        # NOTE: the seccomp package owns the details (runc lists actions, operators, archs);
        # it may offer them as `features()`.
        details = getattr(importlib.import_module("cri.oci.seccomp"), "features", None)
        if callable(details):
            result.update(details())
    return result


def features() -> dict[str, Any]:
    from .capabilities import NAMES

    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": list(HOOK_KINDS),
        "mountOptions": _mount_options(),
        "linux": {
            "namespaces": sorted(NAMESPACE_TYPES),
            "capabilities": list(NAMES),
            "cgroup": {
                "v1": True,
                "v2": True,
                "systemd": False,
                "systemdUser": False,
            },
            "seccomp": _seccomp(),
            "apparmor": {"enabled": True},
            "selinux": {"enabled": False},
        },
        "annotations": {"io.github.cri-py.oci.version": "0.1.0"},
    }
