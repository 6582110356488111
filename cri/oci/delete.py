"""delete: kill what is left if allowed, remove the cgroup(s) and the state dir, run poststop.

No fork of our own: the poststop hooks are programs started with subprocess (fork + exec).
"""

from __future__ import annotations

import os
import time

from . import cgroups, lazylog
from .errors import InvalidState, OciError
from .kill import signal_all, signal_init, thaw_after_kill
from .signals import SIGKILL
from .statefile import (
    PAUSED,
    RUNNING,
    STOPPED,
    Record,
    container_dir,
    init_alive,
    load,
    remove_dir,
    status_name,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .statefile import StrPath
    from .syscalls import Syscalls

log = lazylog.getLogger(__name__)

DEATH_TIMEOUT = 10.0


def _wait_dead(record: Record) -> None:
    deadline = time.monotonic() + DEATH_TIMEOUT
    while init_alive(record):
        if time.monotonic() > deadline:
            raise OciError(f"container {record.id!r} init {record.pid} did not die after SIGKILL")
        time.sleep(0.01)


def _poststop(record: Record) -> None:
    """Per the runtime-spec a failing poststop hook is logged and delete goes on."""
    if not record.hooks.get("poststop"):
        return
    from .hooks import hook_state, run_hooks
    from .spec import parse_hooks

    state = hook_state(
        oci_version=record.oci_version,
        container_id=record.id,
        status=STOPPED,
        pid=0,
        bundle=record.bundle,
        annotations=record.annotations,
    )
    try:
        run_hooks(parse_hooks(record.hooks), ("poststop",), state, fatal=False)
    except OciError as e:  # a hooks object that no longer parses
        log.warning("poststop hooks of %s: %s", record.id, e)


def delete(
    root: StrPath, container_id: str, *, force: bool = False, sys: Syscalls | None = None
) -> None:
    record = load(root, container_id)
    status = status_name(root, record)
    if status in (RUNNING, PAUSED) and not force:
        raise InvalidState(f"cannot delete container {container_id!r} that is {status} (use force)")
    # A created container is killed without --force, as runc does.
    if status != STOPPED:
        signal_init(record, SIGKILL)
        if status == PAUSED:
            thaw_after_kill(record)
        _wait_dead(record)
    manager = cgroups.from_paths(record.cgroup_version, record.cgroup_paths)
    # Without a pid namespace the init's death leaves the rest running: kill them too (runc does).
    deadline = time.monotonic() + DEATH_TIMEOUT
    while manager.pids():
        signal_all(record, SIGKILL)
        thaw_after_kill(record)  # a frozen leftover (paused, then its init died) must run to die
        if time.monotonic() > deadline:
            raise OciError(
                f"container {container_id!r}: processes survive SIGKILL: {manager.pids()}"
            )
        time.sleep(0.01)
    manager.destroy()
    if record.rootfs_mount_id:
        from .rootfs import detach_shared_rootfs
        from .syscalls import RealSyscalls

        detach_shared_rootfs(
            sys or RealSyscalls(), os.path.realpath(record.rootfs), record.rootfs_mount_id
        )
    remove_dir(container_dir(root, container_id))
    log.info("deleted container %s", container_id, extra={"container_id": container_id})
    _poststop(record)
