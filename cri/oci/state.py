"""The public view of a container's status: `State` (what `runc state` reports) and `Status`.

The record on disk and the status it implies are statefile.py's (the state diagram is there);
this module builds the library's typed view on top, for the daemon, the shim and `list`. The hot
CLI commands use statefile directly: the enum and pathlib cost more than their whole work.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path

from .errors import OciError
from .records import record
from .statefile import (
    OCI_VERSION,
    Record,
    init_alive,
    is_frozen,
    load,
    now_rfc3339,
    proc_stat,
    save,
    status_name,
    validate_id,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from .statefile import StrPath


class Status(enum.Enum):
    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"


@record
class State:
    """What `runc state` reports. `created` is an RFC 3339 UTC timestamp string."""

    oci_version: str
    id: str
    status: Status
    pid: int
    bundle: str
    annotations: Mapping[str, str]
    created: str
    rootfs: str = ""

    def to_json(self) -> dict[str, Any]:
        """runc's `state` output shape."""
        return {
            "ociVersion": self.oci_version,
            "id": self.id,
            "pid": self.pid if self.status is not Status.STOPPED else 0,
            "status": self.status.value,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": "",
            "annotations": dict(self.annotations),
        }


def container_dir(root: StrPath, container_id: str) -> Path:
    validate_id(container_id)
    return Path(root) / container_id


def status_of(root: StrPath, record: Record) -> Status:
    return Status(status_name(root, record))


def state_of(root: StrPath, record: Record) -> State:
    return State(
        oci_version=record.oci_version,
        id=record.id,
        status=status_of(root, record),
        pid=record.pid,
        bundle=record.bundle,
        annotations=record.annotations,
        created=record.created,
        rootfs=record.rootfs,
    )


def state(root: StrPath, container_id: str) -> State:
    return state_of(root, load(root, container_id))


def list_containers(root: StrPath) -> list[State]:
    result = []
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    for name in entries:
        try:
            result.append(state(root, name))
        except OciError:
            continue  # half-created or foreign directory
    return result


__all__ = [
    "OCI_VERSION",
    "Record",
    "State",
    "Status",
    "container_dir",
    "init_alive",
    "is_frozen",
    "list_containers",
    "load",
    "now_rfc3339",
    "proc_stat",
    "save",
    "state",
    "state_of",
    "status_of",
    "validate_id",
]
