"""update: new linux.resources for a live container (`runc update`). No fork.

The request is merged into the resources recorded in state.json, the merged set is applied to the
cgroup (devices excepted: runc never changes them here) and recorded again. Merging follows runc:
a value that is absent, null or 0 (runc's "unset") keeps the recorded one; memory.limit -1 without
a swap value means unlimited swap too; hugepage limits merge by page size and unified keys one by
one. The whole merged set is written, because some values depend on each other (v1 memsw must stay
above the memory limit, v2 memory.swap.max is derived from both).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import cgroups
from .errors import InvalidSpec, InvalidState
from .records import replace
from .state import Status, load, save, status_of

log = logging.getLogger(__name__)

#: section -> fields runc's update takes from the request (others are ignored, as by runc)
_NUMBERS = {
    "memory": ("limit", "reservation", "swap"),
    "cpu": ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "burst", "idle"),
    "blockIO": ("weight",),
    "pids": ("limit",),
}
_STRINGS = {"cpu": ("cpus", "mems")}


def _number(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec(f"{where} must be an integer, got {value!r}")
    return value


def merge(current: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
    """The resources after `request` (runc's update JSON / LinuxResources) on `current`."""
    if not isinstance(request, Mapping):
        raise InvalidSpec("resources must be a JSON object")
    merged: dict[str, Any] = copy.deepcopy(dict(current))
    for section, value in request.items():
        if section not in (*_NUMBERS, "hugepageLimits", "unified") and value:
            log.warning("update: linux.resources.%s cannot be updated; ignored", section)
    for section in _NUMBERS.keys() | _STRINGS.keys():
        given = request.get(section)
        if given is None:
            continue
        if not isinstance(given, Mapping):
            raise InvalidSpec(f"{section} must be an object")
        target = dict(merged.get(section) or {})
        for key in _NUMBERS.get(section, ()):
            if given.get(key) is not None and _number(given[key], f"{section}.{key}") != 0:
                target[key] = given[key]
        for key in _STRINGS.get(section, ()):
            if given.get(key):
                if not isinstance(given[key], str):
                    raise InvalidSpec(f"{section}.{key} must be a string")
                target[key] = given[key]
        if target:
            merged[section] = target
    memory = request.get("memory") or {}
    if memory.get("limit") == -1 and not memory.get("swap"):
        merged["memory"]["swap"] = -1
    pages = {p["pageSize"]: p for p in merged.get("hugepageLimits") or []}
    for i, page in enumerate(request.get("hugepageLimits") or []):
        if not isinstance(page, Mapping) or not isinstance(page.get("pageSize"), str):
            raise InvalidSpec(f"hugepageLimits[{i}] needs a pageSize string")
        pages[page["pageSize"]] = {
            "pageSize": page["pageSize"],
            "limit": _number(page.get("limit"), f"hugepageLimits[{i}].limit"),
        }
    if pages:
        merged["hugepageLimits"] = list(pages.values())
    unified = request.get("unified")
    if unified:
        if not isinstance(unified, Mapping) or not all(
            isinstance(v, str) for v in unified.values()
        ):
            raise InvalidSpec("unified must map cgroup file names to strings")
        merged["unified"] = {**(merged.get("unified") or {}), **unified}
    return merged


def update(root: Path, container_id: str, resources: Mapping[str, Any]) -> dict[str, Any]:
    """Apply `resources` to the container's cgroup; returns the merged, recorded resources."""
    record = load(root, container_id)
    status = status_of(root, record)
    if status is Status.STOPPED:
        raise InvalidState(f"cannot update container {container_id!r}: it is stopped")
    merged = merge(record.resources, resources)
    manager = cgroups.from_paths(record.cgroup_version, record.cgroup_paths)
    manager.update(merged)
    save(root, replace(record, resources=merged))
    log.info("updated container %s", container_id, extra={"container_id": container_id})
    return merged


# --- runc's update flags ----------------------------------------------------------------------

_RAM = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """docker/go-units RAMInBytes: "64m", "1.5g", "512MiB", "1024" (binary units)."""
    m = _RAM.match(text)
    if m is None:
        raise InvalidSpec(f"invalid size: {text!r}")
    return int(float(m.group(1)) * _UNITS.get((m.group(2) or "").lower(), 1))


#: flag -> (section, field, parser); runc spells CPU shares --cpu-share, containerd's docs
#: --cpu-shares: both are taken.
FLAGS: dict[str, tuple[str, str, str]] = {
    "blkio-weight": ("blockIO", "weight", "int"),
    "cpu-period": ("cpu", "period", "int"),
    "cpu-quota": ("cpu", "quota", "int"),
    "cpu-burst": ("cpu", "burst", "int"),
    "cpu-share": ("cpu", "shares", "int"),
    "cpu-shares": ("cpu", "shares", "int"),
    "cpu-rt-period": ("cpu", "realtimePeriod", "int"),
    "cpu-rt-runtime": ("cpu", "realtimeRuntime", "int"),
    "cpu-idle": ("cpu", "idle", "int"),
    "cpuset-cpus": ("cpu", "cpus", "str"),
    "cpuset-mems": ("cpu", "mems", "str"),
    "memory": ("memory", "limit", "ram"),
    "memory-swap": ("memory", "swap", "ram"),
    "memory-reservation": ("memory", "reservation", "ram"),
    "pids-limit": ("pids", "limit", "int"),
}
IGNORED_FLAGS = ("kernel-memory", "kernel-memory-tcp")
RDT_FLAGS = ("l3-cache-schema", "mem-bw-schema")


def resources_from_flags(values: Mapping[str, str]) -> dict[str, Any]:
    """runc update's flags (as given on the command line) to a resources request."""
    request: dict[str, Any] = {}
    for flag, text in values.items():
        if flag in IGNORED_FLAGS:
            log.warning("setting --%s is ignored", flag)
            continue
        if flag in RDT_FLAGS:
            from .errors import Unsupported

            raise Unsupported(f"--{flag}: Intel RDT is not supported")
        if flag not in FLAGS:
            continue
        section, key, kind = FLAGS[flag]
        value: int | str
        try:
            if kind == "str":
                value = text
            elif kind == "ram":
                value = -1 if text == "-1" else ram_in_bytes(text)
            else:
                value = int(text)
        except ValueError:
            raise InvalidSpec(f"invalid value for {flag}: {text!r}") from None
        request.setdefault(section, {})[key] = value
    return request
