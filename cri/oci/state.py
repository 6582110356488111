"""Container records on disk and the status derived from them.

    (create)            start opens exec.fifo           init exits / killed
    ------> created --------------------------------> running --------------> stopped
             |   ^                                      |   ^
       pause |   | resume                         pause |   | resume
             v   |                                      v   |
             paused (freezer FROZEN; the init alive)    paused
               \\________________ init dies (killed, thawed) ________________> stopped

`<root>/<id>/state.json` holds what create learned (pid, its start time, cgroup and namespace
paths, the hooks start and delete run) and is written by create; `update` rewrites it with the new
`resources` (atomically, by rename). Status is never stored: it is derived each time from
- the init being alive with the same pid *and* start time (field 22 of /proc/PID/stat), so a reused
  pid is not mistaken for ours, and not a zombie;
- the cgroup's freezer state (paused while FROZEN);
- `exec.fifo` still existing (created) or not (running; start removes it).
"""

from __future__ import annotations

import enum
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ContainerNotFound, OciError

OCI_VERSION = "1.0.2"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,1023}$")


class Status(enum.Enum):
    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Record:
    """state.json: written by create; `resources` rewritten by update."""

    id: str
    pid: int
    pid_start: int
    bundle: str
    rootfs: str
    created: str
    annotations: dict[str, str] = field(default_factory=dict)
    cgroup_version: int = 1
    cgroup_paths: dict[str, str] = field(default_factory=dict)
    namespace_paths: dict[str, str] = field(default_factory=dict)
    oci_version: str = OCI_VERSION
    #: linux.resources as last applied (create, then each update)
    resources: dict[str, Any] = field(default_factory=dict)
    #: the spec's raw `hooks` object: start runs poststart, delete poststop, from here
    hooks: dict[str, Any] = field(default_factory=dict)
    #: without a mount namespace of its own: the id of the rootfs bind the init made in ours,
    #: which delete detaches (0: the container has its own mount namespace)
    rootfs_mount_id: int = 0


def validate_id(container_id: str) -> None:
    if not _ID.match(container_id) or container_id in (".", ".."):
        raise OciError(f"invalid container id {container_id!r}")


def container_dir(root: Path, container_id: str) -> Path:
    validate_id(container_id)
    return root / container_id


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def save(root: Path, record: Record) -> None:
    path = container_dir(root, record.id) / "state.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record)))
    os.replace(tmp, path)


def load(root: Path, container_id: str) -> Record:
    path = container_dir(root, container_id) / "state.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ContainerNotFound(f"container {container_id!r} does not exist") from None
    except ValueError as e:
        raise OciError(f"corrupt state for {container_id!r}: {e}") from None
    return Record(**raw)


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of pid, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may hold spaces and parens: split after the last ')'.
    rest = data[data.rindex(b")") + 2 :].split()
    return rest[0].decode(), int(rest[19])


def init_alive(record: Record) -> bool:
    st = proc_stat(record.pid)
    return st is not None and st[1] == record.pid_start and st[0] not in ("Z", "X")


def is_frozen(record: Record) -> bool:
    from .cgroups import from_paths
    from .cgroups.freezer import FROZEN

    try:
        return from_paths(record.cgroup_version, record.cgroup_paths).freezer_state() == FROZEN
    except OSError:
        return False


def status_of(root: Path, record: Record) -> Status:
    if not init_alive(record):
        return Status.STOPPED
    if is_frozen(record):
        return Status.PAUSED
    if (container_dir(root, record.id) / "exec.fifo").exists():
        return Status.CREATED
    return Status.RUNNING


def state_of(root: Path, record: Record) -> State:
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


def state(root: Path, container_id: str) -> State:
    return state_of(root, load(root, container_id))


def list_containers(root: Path) -> list[State]:
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
