"""Executor state records for tests that need a container "c1" without a real one: its init is
a live process of the test's choosing, with its real start time, so statuses come out right."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cri.oci.statefile import Record, proc_stat, save


def save_live_record(root: Path, pid: int | None = None, **fields: Any) -> Record:
    """Write <root>/c1/state.json (and its brief) for a container whose init is `pid` (default:
    this process); `fields` override the other Record fields."""
    pid = os.getpid() if pid is None else pid
    st = proc_stat(pid)
    assert st is not None, f"no process {pid}"
    values: dict[str, Any] = {
        "id": "c1",
        "pid": pid,
        "pid_start": st[1],
        "bundle": "/b",
        "rootfs": "/b/rootfs",
        "created": "2024-01-01T00:00:00Z",
    }
    values.update(fields)
    record = Record(**values)
    (root / record.id).mkdir(parents=True, exist_ok=True)
    save(root, record)
    return record
