"""A container's record on disk (`<root>/<id>/state.json`) and the status derived from it.

    (create)            start opens exec.fifo           init exits / killed
    ------> created --------------------------------> running --------------> stopped
             |   ^                                      |   ^
       pause |   | resume                         pause |   | resume
             v   |                                      v   |
             paused (freezer FROZEN; the init alive)    paused
               \\________________ init dies (killed, thawed) ________________> stopped

state.json holds what create learned (pid, its start time, cgroup and namespace paths, the hooks
start and delete run) and is written by create; `update` rewrites it with the new `resources`
(atomically, by rename). state.brief, written with it, repeats the few fields the compiled front
end (front/front.c) reads to start, kill and delete a plain container without Python;
exec.brief (and seccomp.bpf), written once by create, what its exec (front/exec.c) reads too.
Status is never stored: it is derived each time from
- the init being alive with the same pid *and* start time (field 22 of /proc/PID/stat), so a reused
  pid is not mistaken for ours, and not a zombie;
- the cgroup's freezer state (paused while FROZEN);
- `exec.fifo` still existing (created) or not (running; start removes it).

This is the part of `state` that start, kill, delete and the CLI's `state` need, kept to os and
the package's own light modules (records, jsonio): those commands cost little more than the
interpreter's start-up. The public view (`State`, the `Status` enum) is state.py's.
"""

from __future__ import annotations

import os
import time

from .errors import ContainerNotFound, OciError
from .jsonio import dumps, loads
from .records import asdict, field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .seccomp.bpf import Program

    StrPath = str | os.PathLike[str]

OCI_VERSION = "1.0.2"

# Status names (state.Status's values)
CREATING = "creating"
CREATED = "created"
RUNNING = "running"
STOPPED = "stopped"
PAUSED = "paused"

#: container ids: [A-Za-z0-9][A-Za-z0-9_.+-]{0,1023}, as runc
_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_CHARS = _ID_FIRST | frozenset("_.+-")


@record
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
    if (
        not 0 < len(container_id) <= 1024
        or container_id[0] not in _ID_FIRST
        or not _ID_CHARS.issuperset(container_id)
        or container_id in (".", "..")
    ):
        raise OciError(f"invalid container id {container_id!r}")


def container_dir(root: StrPath, container_id: str) -> str:
    validate_id(container_id)
    return os.path.join(os.fspath(root), container_id)


def remove_dir(path: str) -> None:
    """shutil.rmtree(path, ignore_errors=True) for a state dir, without shutil's imports
    (fnmatch, re, bz2, lzma: 4 ms)."""
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        entry = os.path.join(path, name)
        try:
            os.unlink(entry)  # a symlink to a directory is unlinked, never followed
        except IsADirectoryError:
            remove_dir(entry)
        except OSError:
            pass
    try:  # noqa: SIM105 - contextlib costs 3 ms to import
        os.rmdir(path)
    except OSError:
        pass


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def brief(record: Record) -> str | None:
    """state.brief: the part of the record the compiled front end (front/front.c) needs to start,
    kill and delete the container without Python; None where those must run here (hooks to run,
    a rootfs bind to undo, a path it could not read back)."""
    if record.hooks.get("poststart") or record.hooks.get("poststop") or record.rootfs_mount_id:
        return None
    lines = [
        f"pid {record.pid}",
        f"pid_start {record.pid_start}",
        f"cgroup_version {record.cgroup_version}",
    ]
    paths = record.cgroup_paths
    freezer = freezer_dir(record)
    if freezer:
        lines.append(f"freezer {freezer}")
    lines += [f"cgroup {directory}" for directory in paths.values()]
    if len(paths) > 32 or any("\n" in line for line in lines):
        return None
    return "\n".join(lines) + "\n"


def write_atomically(directory: str, name: str, text: str) -> None:
    """`name` in `directory` whole or not at all (a temporary file renamed over it); written at
    the fd level, as cgroups.fs.write is, for the same reason: three of these per create."""
    tmp = os.path.join(directory, name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        data = text.encode()
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(directory, name))


def save_exec_brief(directory: str, seccomp: Program | None, *, apparmor: bool) -> None:
    """exec.brief, what the compiled front end's exec (front/exec.c) needs beyond state.brief:
    `seccomp none` or `seccomp FLAGS` with the filter, as compiled at create, in seccomp.bpf
    (struct sock_filter, host byte order); `apparmor 1` where the container has a profile,
    whose execs stay with Python. Written once, at create, filter first."""
    lines = ["seccomp none" if seccomp is None else f"seccomp {seccomp.flags}",
             f"apparmor {int(apparmor)}"]
    if seccomp is not None:
        with open(os.path.join(directory, "seccomp.bpf"), "wb") as f:
            f.write(seccomp.pack())
    write_atomically(directory, "exec.brief", "\n".join(lines) + "\n")


def save(root: StrPath, record: Record) -> None:
    """Write state.json and, where the front end can use it, state.brief (first: both say the
    same, and the front end, finding no brief, leaves the container to Python)."""
    directory = container_dir(root, record.id)
    short = brief(record)
    if short is not None:
        write_atomically(directory, "state.brief", short)
    write_atomically(directory, "state.json", dumps(asdict(record)))


def load(root: StrPath, container_id: str) -> Record:
    path = os.path.join(container_dir(root, container_id), "state.json")
    try:
        with open(path) as f:
            raw = loads(f.read())
    except FileNotFoundError:
        raise ContainerNotFound(f"container {container_id!r} does not exist") from None
    except ValueError as e:
        raise OciError(f"corrupt state for {container_id!r}: {e}") from None
    return Record(**raw)


def stat_fields(pid: int, proc: str = "/proc") -> list[bytes] | None:
    """The fields of /proc/PID/stat after comm (state [0], parent pid [1], start time [19]), or
    None if there is no such process."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may hold spaces and parens: split after the last ')'.
    return data[data.rindex(b")") + 2 :].split()


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of pid, or None if there is no such process."""
    rest = stat_fields(pid)
    return None if rest is None else (rest[0].decode(), int(rest[19]))


def init_alive(record: Record) -> bool:
    st = proc_stat(record.pid)
    return st is not None and st[1] == record.pid_start and st[0] not in ("Z", "X")


def freezer_dir(record: Record) -> str | None:
    """The cgroup directory whose freezer pauses the container: v2's one directory, or v1's
    freezer hierarchy; None without one."""
    if record.cgroup_version == 2:
        return record.cgroup_paths.get("")
    return next((d for h, d in record.cgroup_paths.items() if "freezer" in h.split(",")), None)


def is_frozen(record: Record) -> bool:
    # the freezer's files only, without a manager (v1.py/v2.py and the layout: 1 ms of imports)
    from .cgroups.freezer import FROZEN, v1_state, v2_state

    directory = freezer_dir(record)
    if directory is None:
        return False
    try:
        if record.cgroup_version == 2:
            return v2_state(directory) == FROZEN
        return v1_state(directory) == FROZEN
    except OSError:
        return False


def status_name(root: StrPath, record: Record) -> str:
    """CREATED, RUNNING, PAUSED or STOPPED."""
    if not init_alive(record):
        return STOPPED
    if is_frozen(record):
        return PAUSED
    if os.path.exists(os.path.join(container_dir(root, record.id), "exec.fifo")):
        return CREATED
    return RUNNING


def state_json(root: StrPath, container_id: str) -> dict[str, Any]:
    """What `runc state` prints (state.State.to_json() without building the State)."""
    record = load(root, container_id)
    status = status_name(root, record)
    return {
        "ociVersion": record.oci_version,
        "id": record.id,
        "pid": record.pid if status != STOPPED else 0,
        "status": status,
        "bundle": record.bundle,
        "rootfs": record.rootfs,
        "created": record.created,
        "owner": "",
        "annotations": dict(record.annotations),
    }
