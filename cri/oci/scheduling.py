"""process.scheduler and process.ioPriority (runtime-spec 1.1): set on the container process
before it drops privileges (a real-time policy or IOPRIO_CLASS_RT needs CAP_SYS_NICE /
CAP_SYS_ADMIN), and inherited across execve."""

from __future__ import annotations

from .spec import IOPriority, Scheduler
from .syscalls import IOPRIO_CLASS_SHIFT, IOPRIO_WHO_PROCESS, SchedAttr, Syscalls


def apply_scheduler(sys: Syscalls, sched: Scheduler) -> None:
    sys.sched_setattr(
        SchedAttr(
            policy=sched.policy,
            flags=sched.flags,
            nice=sched.nice,
            priority=sched.priority,
            runtime=sched.runtime,
            deadline=sched.deadline,
            period=sched.period,
        )
    )


def apply_io_priority(sys: Syscalls, io: IOPriority) -> None:
    sys.ioprio_set(IOPRIO_WHO_PROCESS, 0, (io.ioprio_class << IOPRIO_CLASS_SHIFT) | io.priority)
