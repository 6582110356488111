"""start: release a created init by opening exec.fifo for reading. No fork, no threads.

The fifo is opened O_NONBLOCK (so a dead init can't hang us in open), then polled while checking
that the init is still alive; the init writes one byte once its blocking open returns.
"""

from __future__ import annotations

import logging
import os
import select
import time
from pathlib import Path

from .errors import InvalidState, OciError
from .state import Status, container_dir, init_alive, load, status_of

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0


def start(root: Path, container_id: str) -> None:
    record = load(root, container_id)
    status = status_of(root, record)
    if status is not Status.CREATED:
        raise InvalidState(f"cannot start container {container_id!r} in status {status.value}")
    fifo = container_dir(root, container_id) / "exec.fifo"
    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InvalidState(f"container {container_id!r} was already started") from None
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                data = os.read(fd, 1)
                if data:
                    break
            if not init_alive(record):
                raise InvalidState(f"container {container_id!r} init exited before start")
            if time.monotonic() > deadline:
                raise OciError(f"timed out starting container {container_id!r}")
            if ready:
                time.sleep(0.01)  # EOF before any writer: poll again, without spinning
    finally:
        os.close(fd)
    fifo.unlink(missing_ok=True)
    log.info("started container %s", container_id, extra={"container_id": container_id})
