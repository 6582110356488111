"""Pay the kernel's wait for a cgroup migration ahead of time, while the creator does other work.

NOTE: moving a process into a cgroup through cgroup.procs takes the kernel's
cgroup_threadgroup_rwsem for writing, a per-cpu rwsem: the first writer after a quiet spell waits
for an RCU grace period (rcu_sync_enter), which writers within a grace period of the last one
skip, and holds cgroup_mutex meanwhile. Here that is 15 ms, the largest single cost of a `create`
(runc pays it too, while its `runc init` starts up). On v1 the single-threaded init moves through
`tasks` instead, which does not wait (V1Manager.add); v2 has no such way for a domain cgroup.
There `start()` makes a thread move this process into the cgroup it is already in (a no-op
migration) at once and then every few milliseconds, so the grace period passes during the
creator's imports and spec checks and the init's migration after the fork finds the rwsem warm;
`stop()` ends the thread (the creator must be single-threaded for some namespace switches).
Where the kernel does not wait (cgroup favordynmods) the writes cost microseconds; where they fail
(no permission, no cgroupfs) the thread just ends.
"""

from __future__ import annotations

import _thread
import os

#: seconds between two no-op migrations: well within a grace period
INTERVAL = 0.003

_running: tuple[_thread.LockType, _thread.LockType] | None = None


def own_procs_files(proc_cgroup: str, root: str = "/sys/fs/cgroup") -> list[str]:
    """cgroup.procs files of this process's own cgroups, per /proc/self/cgroup's lines."""
    candidates = []
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0":  # v2, mounted at the root or (hybrid) at unified/
            candidates += [f"{root}{path}", f"{root}/unified{path}"]
        else:
            for name in controllers.split(","):
                candidates.append(f"{root}/{name.removeprefix('name=')}{path}")
    return [os.path.join(c, "cgroup.procs") for c in candidates]


def _migrate_in_place(stop: _thread.LockType, done: _thread.LockType) -> None:
    fd = -1
    try:
        with open("/proc/self/cgroup") as f:
            files = own_procs_files(f.read())
        for path in files:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                os.write(fd, b"0")  # "0": the writer's own process
                break
            except OSError:
                if fd >= 0:
                    os.close(fd)
                fd = -1
        while fd >= 0 and not stop.acquire(timeout=INTERVAL):
            os.write(fd, b"0")
    except OSError:
        pass
    finally:
        if fd >= 0:
            os.close(fd)
        done.release()


def start(unified: str = "/sys/fs/cgroup") -> None:
    """Start the no-op migrations in a thread (once; stop() ends them), on cgroup v2 hosts."""
    global _running
    if _running is not None or not os.path.exists(f"{unified}/cgroup.controllers"):
        return  # v1 and hybrid: the init joins its v1 hierarchies through `tasks`, no wait
    stop, done = _thread.allocate_lock(), _thread.allocate_lock()
    stop.acquire()
    done.acquire()
    _thread.start_new_thread(_migrate_in_place, (stop, done))
    _running = (stop, done)


def stop() -> None:
    """End the thread and wait for it (at most the grace period it may be waiting for)."""
    global _running
    if _running is None:
        return
    stop, done = _running
    _running = None
    stop.release()
    done.acquire()
