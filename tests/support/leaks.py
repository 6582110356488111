"""What a test run may leave behind on the host, so that tests can assert it left nothing."""

from __future__ import annotations

import os
from pathlib import Path


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def cgroups_under(parent: str) -> list[str]:
    """Cgroup dirs named by a cgroupfs parent, on every v1 hierarchy and on v2."""
    found = []
    base = Path("/sys/fs/cgroup")
    candidates = [base / parent.lstrip("/")]
    if base.is_dir():
        candidates += [d / parent.lstrip("/") for d in base.iterdir() if d.is_dir()]
    for path in candidates:
        if path.is_dir():
            found.append(str(path))
    return found


def processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


def child_pids() -> set[int]:
    """Our direct children, zombies included (they stay in /proc until reaped)."""
    me = os.getpid()
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue
        if int(stat[stat.rindex(b")") + 2 :].split()[1]) == me:
            found.add(int(pid))
    return found
