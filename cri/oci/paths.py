"""Resolve a path inside the container rootfs without letting symlinks escape it.

A malicious image can ship `/etc -> /` or `a -> ../../..`; mounting onto such a destination with a
plain join would mount over the host. This resolves each component itself, treating the rootfs as
"/" for absolute links and clamping "..", like Go's filepath-securejoin which runc uses.
"""

from __future__ import annotations

import os

_MAX_LINKS = 255


def secure_join(root: str, unsafe: str) -> str:
    """root + the resolution of `unsafe` with root as "/"; missing tails are kept as given."""
    pending = [p for p in unsafe.split("/") if p]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            target = os.readlink(candidate)
        except OSError:
            # Not a symlink, or doesn't exist yet: take it literally.
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise OSError(40, f"too many levels of symbolic links resolving {unsafe!r}")
        if target.startswith("/"):
            resolved = []
        pending = [p for p in target.split("/") if p] + pending
    return os.path.join(root, *resolved) if resolved else root.rstrip("/") or "/"


def make_dirs(path: str, mode: int = 0o755) -> None:
    """mkdir -p where every created level gets `mode` (os.makedirs applies it to the leaf only,
    and the init runs with umask 0, so parents would be world-writable)."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        make_dirs(parent, mode)
    try:  # noqa: SIM105 - contextlib costs 3 ms to import
        os.mkdir(path, mode)
    except FileExistsError:
        pass
