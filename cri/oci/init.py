"""The container init: what the forked child does between fork and exec, as a flat list of steps.

Each step has a name and its failure is reported as "step NAME: error", so a failed create says
which part broke (youki's container_init_process.rs shape). The same process steps
(`process_steps`) serve `exec`.

Runs in a child of a single-threaded caller: plain Python is fine here, but the child must never
return into the caller's stack (create/exec wrap it in os._exit).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from . import capabilities, devices, mounts, namespaces, process, rlimits, rootfs, sync, users
from .cgroups import CgroupManager
from .errors import OciError
from .spec import Process, Spec
from .syscalls import PR_SET_NO_NEW_PRIVS, Syscalls

log = logging.getLogger(__name__)

Step = tuple[str, Callable[[], None]]


class StepFailed(OciError):
    pass


def run_steps(steps: Sequence[Step]) -> None:
    for name, fn in steps:
        try:
            fn()
        except OciError as e:
            # keep the class (InvalidSpec stays InvalidSpec for the caller) but name the step
            raise type(e)(f"step {name}: {e.message}") from e
        except Exception as e:
            raise StepFailed(f"step {name}: {e}") from e


def set_oom_score_adj(value: int | None) -> None:
    """Write oom_score_adj; lowering it needs CAP_SYS_RESOURCE, which this host's root lacks."""
    if value is None:
        return
    path = "/proc/self/oom_score_adj"
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM):
            raise
        with open(path) as f:
            current = f.read().strip()
        log.warning("oom_score_adj %s not permitted (%s); keeping %s", value, e.strerror, current)


@dataclass(slots=True)
class PreparedProcess:
    path: str = ""
    env: dict[str, str] | None = None


def process_steps(sys: Syscalls, proc: Process, out: PreparedProcess) -> list[Step]:
    """Identity, limits and privileges of the container process, then the executable lookup."""
    available = capabilities.host_mask(sys)
    caps = proc.capabilities

    def lookup() -> None:
        out.env = process.environment(proc)
        out.path = process.resolve(proc.args[0], out.env)

    steps: list[Step] = [
        ("oom_score_adj", lambda: set_oom_score_adj(proc.oom_score_adj)),
        ("rlimits", lambda: rlimits.apply(proc.rlimits)),
    ]
    if proc.no_new_privileges:
        steps.append(
            ("no_new_privileges", lambda: None if sys.prctl(PR_SET_NO_NEW_PRIVS, 1) else None)
        )
    if caps is not None:
        steps.append(("capabilities bounding set", lambda: capabilities.drop_bounding(sys, caps)))
    steps.append(("user", lambda: users.change_identity(sys, proc.user)))
    if caps is not None:
        steps.append(("capabilities", lambda: capabilities.apply(sys, caps, available)))
    steps += [
        ("cwd", lambda: process.chdir(proc.cwd)),
        ("executable", lookup),
    ]
    return steps


@dataclass(frozen=True, slots=True)
class InitContext:
    spec: Spec
    sys: Syscalls
    sync_fd: int
    fifo_fd: int
    stdio: tuple[int, int, int]
    cgroup: CgroupManager
    join_fds: list[tuple[str, int]]


def _mount_context(ctx: InitContext) -> mounts.MountContext:
    spec = ctx.spec
    paths = ctx.cgroup.paths
    return mounts.MountContext(
        rootfs=str(spec.root),
        host_network=spec.namespace("network") is None,
        new_cgroupns=spec.new_namespace("cgroup"),
        cgroup_v1=[(d, name) for name, d in paths.items() if name]
        if ctx.cgroup.version == 1
        else [],
        cgroup_v2=paths[""] if ctx.cgroup.version == 2 else None,
    )


def container_steps(ctx: InitContext) -> list[Step]:
    """Everything up to and including pivot_root and the in-container settings."""
    spec, sys = ctx.spec, ctx.sys
    root = os.path.realpath(spec.root)
    mctx = _mount_context(ctx)
    mctx = mounts.MountContext(
        root, mctx.host_network, mctx.new_cgroupns, mctx.cgroup_v1, mctx.cgroup_v2
    )
    flags = namespaces.unshare_flags(spec.namespaces)
    dev_is_bind = any(
        m.destination.rstrip("/") == "/dev" and mounts.parse_options(m.options).is_bind
        for m in spec.mounts
    )

    def spec_mounts() -> None:
        for m in spec.mounts:
            try:
                mounts.mount_one(sys, m, mctx)
            except OSError as e:
                raise OSError(
                    e.errno, f"mount {m.source} on {m.destination} ({m.type}): {e.strerror or e}"
                ) from e

    def make_devices() -> None:
        if not dev_is_bind:
            devices.create_devices(sys, root, spec.devices)
            devices.create_symlinks(root)

    steps: list[Step] = [
        ("join cgroup", lambda: ctx.cgroup.add(0)),
        ("join namespaces", lambda: namespaces.join(sys, ctx.join_fds)),
        ("new namespaces", lambda: sys.unshare(flags) if flags else None),
        ("rootfs propagation", lambda: rootfs.set_root_propagation(sys, spec.rootfs_propagation)),
        ("rootfs parent private", lambda: rootfs.make_parent_private(sys, root)),
        ("bind rootfs", lambda: rootfs.bind_rootfs(sys, root)),
        ("mounts", spec_mounts),
        ("devices", make_devices),
        ("pivot_root", lambda: rootfs.pivot(sys, root)),
        # runc's order: read-only paths first, then masks (a mask may sit under a read-only path)
        ("readonly paths", lambda: mounts.readonly_paths(sys, spec.readonly_paths)),
        ("masked paths", lambda: mounts.mask_paths(sys, spec.masked_paths)),
    ]
    if spec.root_readonly:
        steps.append(("readonly rootfs", lambda: rootfs.readonly_root(sys)))
    if spec.sysctl:
        steps.append(("sysctl", lambda: rootfs.write_sysctls(dict(spec.sysctl))))
    if spec.hostname:
        steps.append(("hostname", lambda: sys.sethostname(spec.hostname or "")))
    if spec.domainname:
        steps.append(("domainname", lambda: sys.setdomainname(spec.domainname or "")))
    return steps


def _wait_for_start(fifo_fd: int) -> None:
    """Block until `start` opens exec.fifo for reading, then tell it we are going.

    The fifo lives in the host state dir, out of reach after pivot_root; the O_PATH fd opened by
    the creator is reopened through /proc/self/fd (runc's trick).
    """
    fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)
    os.close(fifo_fd)


def run(ctx: InitContext) -> NoReturn:
    """The whole init; reports "ready" or an error on the sync pipe; ends in exec or raises."""
    prepared = PreparedProcess()
    run_steps(container_steps(ctx))
    run_steps(process_steps(ctx.sys, ctx.spec.process, prepared))
    sync.send(ctx.sync_fd, {"type": "ready"})
    os.close(ctx.sync_fd)
    # From here on errors can no longer reach the creator: it has returned.
    _wait_for_start(ctx.fifo_fd)
    process.install_stdio(ctx.stdio)
    process.reset_signals()
    process.close_other_fds()
    assert prepared.env is not None
    process.execute(prepared.path, ctx.spec.process.args, prepared.env)
    raise AssertionError("unreachable")
