"""User namespaces: what the creator writes for a new one, and the init's first steps with one.

Every namespace the init creates belongs to the user namespace it is in at that moment, and only
what belongs to the container's user namespace can be used from inside it (mounting proc needs the
pid namespace's owner, sysfs the network namespace's, mqueue the ipc one's). So with a user
namespace, new or joined, the init starts with these steps, before `init.container_steps`
(runc's nsexec order):

    die with the creator   until "ready" (as in container_steps)
    join cgroup            with the host's root rights, which the user namespace takes away
    join namespaces        by path, user first (joined ones keep their owners)
    new user namespace     unshare(CLONE_NEWUSER); {"type": "userns"} to the creator, which
                           writes /proc/PID/uid_map and gid_map and answers {"type": "mapped"}
    root                   setresgid(0), setresuid(0): the container's root, which the mappings
                           must hold (spec.py checks), so the files the init makes get owners
    new pid namespace      unshare(CLONE_NEWPID) and fork: the child is the init (pid 1), this
                           process sends {"type": "child", "pid": N} and exits; the creator, a
                           child subreaper meanwhile, reaps it and answers the init with
                           {"type": "reparented"}: the init is the creator's child again, as
                           without a user namespace, before it sets its parent-death signal

`container_steps` then skips what these did. /proc/PID/setgroups stays "allow": the creator has
CAP_SETGID in the parent namespace, so the gid mappings need no "deny" (runc's rootful case), and
process.user.additionalGids still work.
"""

from __future__ import annotations

import os

from . import namespaces, sync
from .errors import InitFailed
from .signals import SIGKILL
from .spec import IDMapping, Spec
from .syscalls import CLONE_NEWPID, CLONE_NEWUSER, PR_SET_PDEATHSIG, Syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from .init import InitContext, Step


def in_use(spec: Spec) -> bool:
    """Whether the container has a user namespace of its own (new or joined)."""
    return spec.namespace("user") is not None


def map_text(mappings: Sequence[IDMapping]) -> str:
    """/proc/PID/uid_map (gid_map) content: one "inside outside count" line per mapping."""
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)


def write_mappings(pid: int, spec: Spec, proc: str = "/proc") -> None:
    """The creator's part: each file in one write(2), as the kernel requires."""
    for name, mappings in (("uid_map", spec.uid_mappings), ("gid_map", spec.gid_mappings)):
        with open(f"{proc}/{pid}/{name}", "w") as f:
            f.write(map_text(mappings))


def _expect(fd: int, kind: str) -> None:
    reply = sync.receive(fd, None)
    if reply is None or reply.get("type") != kind:
        raise InitFailed(f"expected {kind!r} from the creator, got {reply}")


def _new_user_namespace(sys: Syscalls, sync_fd: int) -> None:
    sys.unshare(CLONE_NEWUSER)
    sync.send(sync_fd, {"type": "userns"})
    _expect(sync_fd, "mapped")


def _parent_death_signal(sys: Syscalls) -> None:
    sys.prctl(PR_SET_PDEATHSIG, SIGKILL)


def _become_root(sys: Syscalls) -> None:
    sys.setresgid(0)
    sys.setresuid(0)


def _new_pid_namespace(sys: Syscalls, sync_fd: int) -> None:
    """Fork the init into a new pid namespace; only the init returns from here."""
    sys.unshare(CLONE_NEWPID)
    pid = os.fork()
    if pid != 0:
        try:
            sync.send(sync_fd, {"type": "child", "pid": pid})
        finally:
            os._exit(0)
    _expect(sync_fd, "reparented")


def early_steps(ctx: InitContext) -> list[Step]:
    """The steps above, for a container with a user namespace (`in_use`)."""
    spec, sys = ctx.spec, ctx.sys
    steps: list[Step] = [
        ("die with the creator", lambda: _parent_death_signal(sys)),
        ("join cgroup", lambda: ctx.cgroup.add(0)),
        ("join namespaces", lambda: namespaces.join(sys, ctx.join_fds)),
    ]
    if spec.new_namespace("user"):
        steps.append(("new user namespace", lambda: _new_user_namespace(sys, ctx.sync_fd)))
    steps.append(("root in the user namespace", lambda: _become_root(sys)))
    if spec.new_namespace("pid"):
        steps.append(("new pid namespace", lambda: _new_pid_namespace(sys, ctx.sync_fd)))
    return steps


def double_fork(spec: Spec) -> bool:
    """Whether the init forks once more (`_new_pid_namespace`), so the creator must reap the
    first child and adopt the init."""
    return in_use(spec) and spec.new_namespace("pid")
