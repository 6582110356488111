"""The sync channel between the creator and the init: one JSON message per line.

Child to parent: {"type": "hooks"} (create: run the createRuntime hooks now), {"type": "ready"};
{"type": "error", "kind": <OciError subclass name>, "message": ...}; with a user namespace first
{"type": "userns"} and {"type": "child", "pid": N} (userns.py). Parent to child (create's
socketpair only): {"type": "resume"} after the hooks, {"type": "mapped"}, {"type": "reparented"}.
Each side sends one message and then waits for the other's, so no message ever follows another
unread. The child's end is O_CLOEXEC, so a successful exec reads as EOF (used by exec_process,
over a plain pipe).
"""

from __future__ import annotations

import os
import select
import time

from .errors import BY_NAME, InitFailed, OciError
from .jsonio import dumps, loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def send(fd: int, message: dict[str, Any]) -> None:
    data = (dumps(message) + "\n").encode()
    while data:
        n = os.write(fd, data)
        data = data[n:]


def send_error(fd: int, exc: BaseException) -> None:
    kind = (
        type(exc).__name__
        if isinstance(exc, OciError) and type(exc).__name__ in BY_NAME
        else "InitFailed"
    )
    send(fd, {"type": "error", "kind": kind, "message": str(exc)})


def receive(fd: int, timeout: float | None) -> dict[str, Any] | None:
    """The next message, or None on EOF. Raises InitFailed on timeout (None: no timeout)."""
    buf = b""
    deadline = None if timeout is None else time.monotonic() + timeout
    while b"\n" not in buf:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise InitFailed("timed out waiting for the container init")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            if buf:
                break
            return None
        buf += chunk
    # NOTE: each side sends one message and stops, so no partial second message can be lost here.
    line = buf.split(b"\n", 1)[0]
    message: dict[str, Any] = loads(line.decode())
    return message


def raise_error(message: dict[str, Any]) -> None:
    cls = BY_NAME.get(str(message.get("kind")), InitFailed)
    raise cls(str(message.get("message")))
