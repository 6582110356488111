"""The CRI seccomp settings of a container, turned into the spec's `linux.seccomp` (or none).

Which profile:
- `security_context.seccomp` (a SecurityProfile) when the kubelet sets it; otherwise the
  deprecated `seccomp_profile_path` string: "runtime/default" and "docker/default" mean
  RuntimeDefault, "unconfined" Unconfined, "localhost/<absolute path>" Localhost, and "" means
  nothing was asked for (no filter, as in containerd without `unset_seccomp_profile`).
- RuntimeDefault -> `default_profile(capabilities)`; Unconfined -> None; Localhost -> the JSON
  file on the node, validated and compiled here so a bad profile fails CreateContainer with
  INVALID_ARGUMENT rather than the container's start.
- Privileged containers run without a filter unless a Localhost profile is named explicitly.
  RuntimeDefault does not count as explicit: the kubelet sends it for every container when its
  SeccompDefault setting is on, and privileged pods (CNI agents, device plugins) must keep
  working. NOTE: containerd drops even a Localhost profile for privileged containers.

Localhost files may be in the OCI format (`linux.seccomp` as is) or Docker's: `archMap` stands in
for `architectures`, a rule may have `name` instead of `names`, and `includes`/`excludes`
(caps, arches, minKernel) are applied to this container here, as Docker does, since neither the
spec nor the executor knows them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cri.api.runtime.v1 import api_pb2 as v1
from cri.errors import InvalidArgument
from cri.spec.profiles import RUNTIME_DEFAULT, UNCONFINED, requested_profile
from cri.spec.seccomp_default import default_profile

log = logging.getLogger(__name__)

RUNTIME_DEFAULT_NAMES = ("runtime/default", "docker/default")

#: the OCI `linux.seccomp` keys a normalised profile keeps
SPEC_KEYS = (
    "defaultAction",
    "defaultErrnoRet",
    "architectures",
    "flags",
    "listenerPath",
    "listenerMetadata",
)
RULE_KEYS = ("names", "action", "errnoRet", "args")

#: uname -m -> the names Docker's `includes.arches`/`excludes.arches` use for this host
_DOCKER_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def seccomp_for(
    profile: v1.SecurityProfile | None,
    legacy_path: str,
    privileged: bool,
    *,
    capabilities: Iterable[str] = (),
) -> dict[str, Any] | None:
    """The `linux.seccomp` object for a container, or None for no filter.

    `profile` is `security_context.seccomp` when set (HasField), else None; `legacy_path` is
    `security_context.seccomp_profile_path`; `capabilities` the container's bounding set, which
    widens RuntimeDefault (and Docker-style `includes.caps` rules of a Localhost profile).
    """
    if privileged:
        # containerd's rule, which critest checks: a privileged container is never filtered,
        # even when its config names a profile.
        return None
    kind, path = requested_profile("seccomp", profile, legacy_path, RUNTIME_DEFAULT_NAMES)
    if kind in ("", UNCONFINED):
        return None
    if kind == RUNTIME_DEFAULT:
        return default_profile(capabilities)
    return load_localhost(path, capabilities)


def load_localhost(path: str, capabilities: Iterable[str] = ()) -> dict[str, Any]:
    """Read, validate and normalise a Localhost profile; InvalidArgument says what is wrong."""
    if not os.path.isabs(path):
        raise InvalidArgument(f"seccomp profile {path!r}: the path must be absolute")
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InvalidArgument(f"seccomp profile {path}: no such file on this node") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"seccomp profile {path}: cannot read it: {e}") from None
    except ValueError as e:
        raise InvalidArgument(f"seccomp profile {path}: not valid JSON: {e}") from None
    spec = normalize(raw, capabilities, where=f"seccomp profile {path}")
    # Compile it now, so a profile the executor would refuse (unknown action, bad argument,
    # too big a filter, NOTIFY) fails here with its reason.
    from cri.oci.errors import OciError
    from cri.oci.seccomp import compile_seccomp

    try:
        compile_seccomp(spec)
    except OciError as e:
        raise InvalidArgument(f"seccomp profile {path}: {e.message}") from None
    return spec


def _caps(names: Iterable[str]) -> set[str]:
    return {n.upper() if n.upper().startswith("CAP_") else f"CAP_{n.upper()}" for n in names}


def _kernel_at_least(version: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        out = []
        for piece in v.split("-")[0].split(".")[:3]:
            digits = "".join(ch for ch in piece if ch.isdigit())
            out.append(int(digits or 0))
        return tuple(out)

    return parts(os.uname().release) >= parts(version)


def _applies(rule: Mapping[str, Any], caps: set[str], arch: str, where: str) -> bool:
    """Docker's `includes` (all must hold) and `excludes` (none may) of one rule."""
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if not isinstance(inc, Mapping) or not isinstance(exc, Mapping):
        raise InvalidArgument(f"{where}: includes/excludes must be objects")
    if inc.get("caps") and not _caps(inc["caps"]) <= caps:
        return False
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if inc.get("minKernel") and not _kernel_at_least(str(inc["minKernel"])):
        return False
    if exc.get("caps") and _caps(exc["caps"]) & caps:
        return False
    return not (exc.get("arches") and arch in exc["arches"])


def normalize(
    raw: Any, capabilities: Iterable[str] = (), *, where: str = "seccomp profile"
) -> dict[str, Any]:
    """An OCI `linux.seccomp` object from an OCI- or Docker-format profile."""
    if not isinstance(raw, Mapping):
        raise InvalidArgument(f"{where}: must be a JSON object, got {type(raw).__name__}")
    if not isinstance(raw.get("defaultAction"), str):
        raise InvalidArgument(f"{where}: defaultAction is missing or not a string")
    machine = os.uname().machine
    spec: dict[str, Any] = {k: raw[k] for k in SPEC_KEYS if raw.get(k) is not None}
    if not spec.get("architectures") and raw.get("archMap"):
        arch_map = raw["archMap"]
        if not isinstance(arch_map, list):
            raise InvalidArgument(f"{where}: archMap must be an array")
        from cri.oci.seccomp.arch import HOSTS

        native = HOSTS.get(machine, ("", ()))[0]
        for entry in arch_map:
            if isinstance(entry, Mapping) and entry.get("architecture") == native:
                spec["architectures"] = [native, *(entry.get("subArchitectures") or [])]
    syscalls = raw.get("syscalls")
    syscalls = [] if syscalls is None else syscalls
    if not isinstance(syscalls, list):
        raise InvalidArgument(f"{where}: syscalls must be an array")
    caps = _caps(capabilities)
    arch = _DOCKER_ARCH.get(machine, machine)
    rules = []
    for i, rule in enumerate(syscalls):
        at = f"{where}: syscalls[{i}]"
        if not isinstance(rule, Mapping):
            raise InvalidArgument(f"{at} must be an object")
        names = rule.get("names")
        if names is None and "name" in rule:  # Docker's older one-name form
            names = [rule["name"]]
        if not isinstance(names, list) or not names:
            raise InvalidArgument(f"{at}: names must be a non-empty array of syscall names")
        for name in names:
            if not isinstance(name, str) or not name:
                raise InvalidArgument(f"{at}: syscall names must be strings, got {name!r}")
        if not isinstance(rule.get("action"), str):
            raise InvalidArgument(f"{at}: action is missing or not a string")
        if not _applies(rule, caps, arch, at):
            log.debug("%s: %s left out by its includes/excludes", at, names)
            continue
        clean = {k: rule[k] for k in RULE_KEYS if rule.get(k) is not None}
        clean["names"] = list(names)
        rules.append(clean)
    spec["syscalls"] = rules
    return spec
