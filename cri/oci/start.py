"""start: release a created init by opening exec.fifo for reading, then run poststart hooks.

No fork of our own, no threads (hooks are programs started with subprocess: fork + exec). The fifo
is opened O_NONBLOCK (so a dead init can't hang us in open), then polled while checking that the
init is still alive; the init writes one byte once its blocking open returns, and keeps its write
end open (O_CLOEXEC) until the execve, so EOF after the byte means the user process runs: `start`
returns, and the poststart hooks run, only then ("after the user-specified process is executed",
config.md; runc 1.1 and crun go on at the byte). A signal sent after `start` thus reaches the
user process, not the init before its execve.

NOTE: poststart hooks run here, after the init was released, as the runtime-spec says; runc 1.1
runs them at the end of `create` instead (fixed in runc 1.2). A failing poststart hook is logged
and start succeeds (runtime-spec).
"""

from __future__ import annotations

import os
import select
import time

from . import lazylog
from .errors import InvalidState, OciError
from .statefile import CREATED, RUNNING, Record, container_dir, init_alive, load, status_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .statefile import StrPath

log = lazylog.getLogger(__name__)

START_TIMEOUT = 30.0


def start(root: StrPath, container_id: str) -> None:
    record = load(root, container_id)
    status = status_name(root, record)
    if status != CREATED:
        raise InvalidState(f"cannot start container {container_id!r} in status {status}")
    fifo = os.path.join(container_dir(root, container_id), "exec.fifo")
    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InvalidState(f"container {container_id!r} was already started") from None
    try:
        deadline = time.monotonic() + START_TIMEOUT
        released = False
        while True:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                data = os.read(fd, 1)
                if data:
                    released = True  # the init got going: now wait for its execve (EOF)
                    continue
                if released:
                    break
            if not init_alive(record):
                if released:
                    break  # it died before or right after the execve: stopped, not our error
                raise InvalidState(f"container {container_id!r} init exited before start")
            if time.monotonic() > deadline:
                raise OciError(f"timed out starting container {container_id!r}")
            if ready:
                time.sleep(0.01)  # EOF before any writer: poll again, without spinning
    finally:
        os.close(fd)
    try:  # noqa: SIM105 - contextlib (functools, collections) costs 3 ms to import
        os.unlink(fifo)
    except FileNotFoundError:
        pass
    log.info("started container %s", container_id, extra={"container_id": container_id})
    if record.hooks.get("poststart"):
        _poststart(record)


def _poststart(record: Record) -> None:
    from .hooks import hook_state, run_hooks
    from .spec import parse_hooks

    state = hook_state(
        oci_version=record.oci_version,
        container_id=record.id,
        status=RUNNING,
        pid=record.pid,
        bundle=record.bundle,
        annotations=record.annotations,
    )
    try:
        # from the bundle, as runc 1.1 (which runs them at the end of create, from the bundle)
        cwd = record.bundle if os.path.isdir(record.bundle) else None
        run_hooks(parse_hooks(record.hooks), ("poststart",), state, fatal=False, cwd=cwd)
    except OciError as e:
        log.warning("poststart hooks of %s: %s", record.id, e)
