"""Bytes and inodes of a container's writable layer (its overlay upper directory).

A full walk of every upper directory on each ListContainerStats would cost in proportion to what
the containers wrote, every few seconds. The walk is cached per container for TTL_NS instead:
kubelet's eviction and image GC act on a scale of tens of seconds, and cAdvisor's own disk usage
refresh is slower still. A container asked about for the first time is walked at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

TTL_NS = 10_000_000_000


@dataclass(frozen=True, slots=True)
class LayerUsage:
    at_ns: int
    used_bytes: int  # allocated blocks, as du counts them
    inodes: int


def measure(path: str) -> tuple[int, int]:
    """(bytes in allocated blocks, inodes) under path, each hard-linked inode counted once."""
    used, seen = 0, set()
    stack = [path]
    while stack:
        directory = stack.pop()
        try:
            entries = os.scandir(directory)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_ino in seen:
                    continue
                seen.add(st.st_ino)
                used += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return used, len(seen)


class LayerUsageCache:
    def __init__(self, ttl_ns: int = TTL_NS) -> None:
        self._ttl_ns = ttl_ns
        self._usage: dict[str, LayerUsage] = {}
        self._lock = threading.Lock()

    def usage(self, key: str, path: str) -> LayerUsage:
        now = time.time_ns()
        with self._lock:
            cached = self._usage.get(key)
        if cached is not None and now - cached.at_ns < self._ttl_ns:
            return cached
        used, inodes = measure(path)
        fresh = LayerUsage(now, used, inodes)
        with self._lock:
            self._usage[key] = fresh
        return fresh

    def retain(self, keys: Iterable[str]) -> None:
        keep = set(keys)
        with self._lock:
            for key in [k for k in self._usage if k not in keep]:
                del self._usage[key]


def mountpoint_of(path: str) -> str:
    """The mount point of the filesystem that holds path (FilesystemUsage.fs_id)."""
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path
