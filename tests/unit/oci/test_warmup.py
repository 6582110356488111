"""cgroups/warmup.py: the no-op migrations that pay the first migration's grace period early."""

from __future__ import annotations

import _thread
import time

from cri.oci.cgroups import warmup


def test_own_procs_files_for_v1_hybrid_and_v2_lines() -> None:
    text = "9:name=systemd:/a\n4:cpu,cpuacct:/b/c\n0::/d\n"
    assert warmup.own_procs_files(text, "/cg") == [
        "/cg/systemd/a/cgroup.procs",
        "/cg/cpu/b/c/cgroup.procs",
        "/cg/cpuacct/b/c/cgroup.procs",
        "/cg/d/cgroup.procs",
        "/cg/unified/d/cgroup.procs",
    ]


def test_start_and_stop_leave_no_thread_behind() -> None:
    before = _thread._count()
    started = time.monotonic()
    warmup.start()
    warmup.start()  # once
    assert _thread._count() <= before + 1
    warmup.stop()
    warmup.stop()  # idempotent
    for _ in range(100):  # the thread ends right after it says it is done
        if _thread._count() == before:
            break
        time.sleep(0.01)
    assert _thread._count() == before
    # at most one grace period (tens of ms), wherever the writes fail or succeed
    assert time.monotonic() - started < 2
