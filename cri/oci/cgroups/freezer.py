"""The freezer: stop and resume every process of a cgroup (pause/resume, and kill --all).

v1: write FROZEN/THAWED to freezer.state and read it back; FREEZING means "not yet", and a
    cgroup whose processes keep forking may stay there, so runc's loop is kept: rewrite FROZEN,
    now and then thaw briefly and retry, and give up (thawed) after a bounded number of rounds.
v2: write 1/0 to cgroup.freeze, then wait for "frozen 1"/"frozen 0" in cgroup.events (the
    write returns before every task has stopped).
Reading the state is cheap (one file), so `state` derives "paused" from it each time.
"""

from __future__ import annotations

import os
import time

from ..errors import OciError
from . import fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Writer = Callable[[str, str], None]

FROZEN = "FROZEN"
THAWED = "THAWED"
FREEZING = "FREEZING"

#: v1 rounds (runc: 1000 tries, a thaw every 50th); v2: 1000 polls 10 ms apart
ROUNDS = 1000
POLL = 0.01


class FreezeFailed(OciError):
    pass


def _read(path: str) -> str | None:
    try:
        return fs.read(path)
    except FileNotFoundError:
        return None


# --- v1 ---------------------------------------------------------------------------------------


def v1_state(directory: str | None) -> str | None:
    """FROZEN, FREEZING, THAWED, or None without a freezer hierarchy."""
    if directory is None:
        return None
    state = _read(os.path.join(directory, "freezer.state"))
    if state == FROZEN and _read(os.path.join(directory, "freezer.self_freezing")) == "0":
        return THAWED  # frozen through an ancestor, not paused itself (runc's reading)
    return state


def v1_freeze(
    directory: str, write: Writer = fs.write, sleep: Callable[[float], None] = time.sleep
) -> None:
    path = os.path.join(directory, "freezer.state")
    for i in range(ROUNDS):
        if i % 50 == 49:
            # Thawing now and then lets a forking workload settle so the freeze can complete.
            write(path, THAWED)
            sleep(POLL)
        write(path, FROZEN)
        if i % 25 == 24:
            sleep(0.00001)
        state = fs.read(path)
        if state == FROZEN:
            return
        if state != FREEZING:
            raise FreezeFailed(f"{path}: unexpected state {state!r} after writing {FROZEN}")
    write(path, THAWED)
    raise FreezeFailed(f"unable to freeze {directory}: stuck in {FREEZING}")


def v1_thaw(directory: str, write: Writer = fs.write) -> None:
    path = os.path.join(directory, "freezer.state")
    write(path, THAWED)
    state = fs.read(path)
    if state != THAWED:
        raise FreezeFailed(f"{path}: state {state!r} after writing {THAWED}")


# --- v2 ---------------------------------------------------------------------------------------


def v2_state(directory: str) -> str | None:
    """FROZEN, FREEZING (asked, not reached yet), THAWED, or None without cgroup.freeze."""
    wanted = _read(os.path.join(directory, "cgroup.freeze"))
    if wanted is None:
        return None
    if wanted == "0":
        return THAWED
    return FROZEN if _events_frozen(directory) else FREEZING


def _events_frozen(directory: str) -> bool:
    events = _read(os.path.join(directory, "cgroup.events")) or ""
    for line in events.splitlines():
        key, _, value = line.partition(" ")
        if key == "frozen":
            return value.strip() == "1"
    return False


def _v2_set(directory: str, value: str, write: Writer, sleep: Callable[[float], None]) -> None:
    path = os.path.join(directory, "cgroup.freeze")
    if not os.path.exists(path):
        raise FreezeFailed(f"freezer not supported: {path} does not exist")
    write(path, value)
    want = value == "1"
    for _ in range(ROUNDS):
        if _events_frozen(directory) == want:
            return
        sleep(POLL)
    raise FreezeFailed(
        f"timeout of {ROUNDS * POLL:.0f}s reached waiting for {directory} to "
        f"{'freeze' if want else 'thaw'}"
    )


def v2_freeze(
    directory: str, write: Writer = fs.write, sleep: Callable[[float], None] = time.sleep
) -> None:
    try:
        _v2_set(directory, "1", write, sleep)
    except FreezeFailed:
        # never leave a half-frozen container behind
        if os.path.exists(os.path.join(directory, "cgroup.freeze")):
            write(os.path.join(directory, "cgroup.freeze"), "0")
        raise


def v2_thaw(
    directory: str, write: Writer = fs.write, sleep: Callable[[float], None] = time.sleep
) -> None:
    _v2_set(directory, "0", write, sleep)
