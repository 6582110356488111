"""Killing a process and everything it started, as a timed-out ExecSync must.

Killing only the exec'd process leaves its children behind (reparented to the container's init,
where critest's "execSync with timeout" finds them), and runc's exec does not take its child down
with it. The tree is found from /proc (each process's parent), stopped first so that nothing in it
forks a new member between the walk and the kill, walked again until it stops growing, then
killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterable

from cri.oci.statefile import stat_fields


def parent_of(pid: int, proc: str = "/proc") -> int | None:
    fields = stat_fields(pid, proc)
    return None if fields is None else int(fields[1])


def all_pids(proc: str = "/proc") -> list[int]:
    return [int(name) for name in os.listdir(proc) if name.isdigit()]


def descendants(root: int, parents: Iterable[tuple[int, int | None]]) -> set[int]:
    """root and every process below it, from (pid, parent pid) pairs."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents:
        if ppid is not None:
            children.setdefault(ppid, []).append(pid)
    tree, stack = {root}, [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in tree:
                tree.add(child)
                stack.append(child)
    return tree


def kill_tree(root: int, proc: str = "/proc",
              send: Callable[[int, int], None] = os.kill) -> set[int]:
    """SIGKILL root and its descendants; the pids signalled."""
    stopped: set[int] = set()
    while True:
        tree = descendants(root, ((pid, parent_of(pid, proc)) for pid in all_pids(proc)))
        new = tree - stopped
        if not new:
            break
        for pid in new:
            _signal(send, pid, signal.SIGSTOP)
        stopped |= new
    for pid in stopped:
        _signal(send, pid, signal.SIGKILL)
    return stopped


def _signal(send: Callable[[int, int], None], pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        send(pid, sig)
