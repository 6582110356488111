"""The container init: what the forked child does between fork and exec, as a flat list of steps.

Each step has a name and its failure is reported as "step NAME: error", so a failed create says
which part broke (youki's container_init_process.rs shape). The same process steps
(`process_steps`) serve `exec`.

Runs in a child of a single-threaded caller: plain Python is fine here, but the child must never
return into the caller's stack (create/exec wrap it in os._exit).
"""

from __future__ import annotations

import errno
import fcntl  # run() needs it after pivot_root, where it could no longer be imported
import os
from _collections_abc import Mapping  # collections.abc's home: collections itself costs 2 ms

from . import (
    apparmor,
    capabilities,
    devices,
    lazylog,
    mounts,
    namespaces,
    process,
    rlimits,
    rootfs,
    scheduling,
    sync,
    users,
)
from .errors import InitFailed, OciError
from .records import mutable_record, record
from .signals import SIGKILL
from .spec import Process, Spec
from .statefile import OCI_VERSION
from .syscalls import PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG, Syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn

    from .cgroups import CgroupManager
    from .seccomp.bpf import Program

    Step = tuple[str, Callable[[], None]]

log = lazylog.getLogger(__name__)


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


def new_session(sys: Syscalls) -> None:
    sys.setsid()


@mutable_record
class PreparedProcess:
    path: str = ""
    env: dict[str, str] | None = None
    #: the armed seccomp filter (`prepare_seccomp`); installing it is all that is left to do
    seccomp: Callable[[], None] | None = None


def seccomp_profile(raw_spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The spec's `linux.seccomp` object, if any (the compiler validates it)."""
    linux = raw_spec.get("linux")
    profile: Mapping[str, Any] | None = linux.get("seccomp") if isinstance(linux, Mapping) else None
    return profile


def prepare_seccomp(profile: Mapping[str, Any], out: PreparedProcess) -> None:
    """Compile and arm the filter. Must run before pivot_root or joining a mount namespace: the
    compiler's modules and libc are loaded from the host's filesystem. Errors still reach the
    creator here."""
    from .seccomp import arm, compile_seccomp

    out.seccomp = arm(compile_seccomp(profile))


def arm_seccomp(program: Program, out: PreparedProcess) -> None:
    """Arm a filter the creator compiled (create.compile_profile); as prepare_seccomp."""
    from .seccomp import arm

    out.seccomp = arm(program)


def install_seccomp(prepared: PreparedProcess) -> None:
    """Install the armed filter, if `process_steps` left it for the last moment: call it right
    before execve, so as few of our own syscalls as possible run under the container's filter."""
    install, prepared.seccomp = prepared.seccomp, None
    if install is not None:
        run_steps([("seccomp", install)])


def process_steps(sys: Syscalls, proc: Process, out: PreparedProcess) -> list[Step]:
    """Identity, limits and privileges of the container process, then the executable lookup.

    A filter armed in `out.seccomp` goes in here when no_new_privs is off: the kernel then takes
    it only with CAP_SYS_ADMIN, so before the capabilities are dropped. With no_new_privs it is
    left to `install_seccomp` (runc's order in both cases).
    """
    available = capabilities.host_mask(sys)
    caps = proc.capabilities

    def lookup() -> None:
        out.env = process.environment(proc)
        out.path = process.resolve(proc.args[0], out.env)

    steps: list[Step] = [
        ("oom_score_adj", lambda: set_oom_score_adj(proc.oom_score_adj)),
        ("rlimits", lambda: rlimits.apply(proc.rlimits)),
    ]
    if proc.scheduler is not None:
        sched = proc.scheduler
        steps.append(("scheduler", lambda: scheduling.apply_scheduler(sys, sched)))
    if proc.io_priority is not None:
        io = proc.io_priority
        steps.append(("io priority", lambda: scheduling.apply_io_priority(sys, io)))
    if proc.apparmor_profile:
        profile = proc.apparmor_profile
        steps.append(("apparmor", lambda: apparmor.apply_on_exec(profile)))
    if proc.no_new_privileges:
        steps.append(
            ("no_new_privileges", lambda: None if sys.prctl(PR_SET_NO_NEW_PRIVS, 1) else None)
        )
    if out.seccomp is not None and not proc.no_new_privileges:
        install, out.seccomp = out.seccomp, None
        steps.append(("seccomp", install))
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


@record
class InitContext:
    spec: Spec
    sys: Syscalls
    sync_fd: int
    fifo_fd: int
    stdio: tuple[int, int, int]
    cgroup: CgroupManager
    join_fds: list[tuple[str, int]]
    container_id: str = ""
    #: connected --console-socket fd when process.terminal (the init sends the pty master on it)
    console_socket: int | None = None
    #: caller fds that become 3, 4, ... in the container (preserve-fds, LISTEN_FDS)
    extra_fds: tuple[int, ...] = ()
    #: the spec's seccomp filter, compiled by the creator (it also keeps it for exec)
    seccomp: Program | None = None


def _uses_userns(spec: Spec) -> bool:
    """userns.in_use, without importing userns for the specs that have none (`preload`)."""
    return spec.namespace("user") is not None


def preload(spec: Spec, *, console: bool) -> None:
    """Import what this spec's optional steps need: the creator calls it before the fork.

    Most steps run after pivot_root (or chroot), where this package and the standard library are
    out of reach, so what they import must already be loaded; the modules that only some specs
    need are imported here, for those specs alone (tests/unit/oci/test_cli_imports.py).
    `console`: a terminal, over a console socket.
    """
    if console:
        from . import console as _console  # noqa: F401 - with fcntl and struct
    if _uses_userns(spec):
        from . import userns  # noqa: F401 - early_steps
    if spec.hooks:
        from . import hooks  # noqa: F401

        if spec.hooks.get("startContainer"):
            # run after pivot_root: what run_hook imports (and its timeout path) must be loaded
            import contextlib  # noqa: F401
            import subprocess  # noqa: F401
    if spec.process.scheduler is not None:
        import struct  # noqa: F401 - SchedAttr.pack


def hook_state(ctx: InitContext, status: str) -> dict[str, object]:
    """The state the init's own hooks get: its pid as seen in its pid namespace (runc's)."""
    from . import hooks  # preloaded

    return hooks.hook_state(
        oci_version=OCI_VERSION,
        container_id=ctx.container_id,
        status=status,
        pid=os.getpid(),
        bundle=str(ctx.spec.bundle),
        annotations=ctx.spec.annotations,
    )


def _runtime_hooks(ctx: InitContext) -> None:
    """Have the creator run prestart/createRuntime hooks (in the runtime namespaces) meanwhile."""
    sync.send(ctx.sync_fd, {"type": "hooks"})
    reply = sync.receive(ctx.sync_fd, None)
    if reply is None or reply.get("type") != "resume":
        raise InitFailed(f"the creator did not resume the init after its hooks: {reply}")


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
    own_mounts = spec.namespace("mount") is not None
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
        # runc's init is a session leader too (and must be, to take a controlling terminal)
        ("setsid", lambda: new_session(sys)),
        # NOTE: as a session leader the init no longer dies with its creator's process group
        # (the shim kills its group when it times out): until "ready" it dies with the creator
        # (the kernel drops this at a uid change; what can hang, mounts and hooks, comes first).
        ("die with the creator", lambda: _parent_death_signal(sys, SIGKILL)),
    ]
    # NOTE: the first cgroup migration after a quiet spell waits for an RCU grace period
    # (cgroups/warmup.py), so the init joins its cgroup after the mounts, while that passes;
    # first only where it matters: a new cgroup namespace is rooted at the cgroup the init is in
    # when it unshares, and with a user namespace the join is done before it (early_steps).
    late_join = not _uses_userns(spec) and not spec.new_namespace("cgroup")
    join_cgroup: Step = ("join cgroup", lambda: ctx.cgroup.add(0))
    if not _uses_userns(spec):  # else done before the user namespace (userns.early_steps)
        if not late_join:
            steps.append(join_cgroup)
        steps.append(("join namespaces", lambda: namespaces.join(sys, ctx.join_fds)))
    steps += [
        ("new namespaces", lambda: sys.unshare(flags) if flags else None),
    ]
    if own_mounts:
        steps += [
            (
                "rootfs propagation",
                lambda: rootfs.set_propagation_before_pivot(sys, spec.rootfs_propagation),
            ),
            ("rootfs parent private", lambda: rootfs.make_parent_private(sys, root)),
        ]
    steps += [
        ("bind rootfs", lambda: rootfs.bind_rootfs(sys, root)),
        ("mounts", spec_mounts),
        ("devices", make_devices),
    ]
    if late_join:
        steps.append(join_cgroup)  # before any hook looks at the init
    if spec.hooks:
        from . import hooks  # preloaded

        if hooks.has_any(spec.hooks, hooks.RUNTIME_CREATE):
            steps.append(("createRuntime hooks", lambda: _runtime_hooks(ctx)))
        if spec.hooks.get("createContainer"):
            # in the container's namespaces, the old root still visible, cwd the rootfs (runc's)
            steps.append(
                (
                    "createContainer hooks",
                    lambda: hooks.run_hooks(
                        spec.hooks,
                        ("createContainer",),
                        hook_state(ctx, "creating"),
                        cwd=root,
                        default_env=dict(e.partition("=")[::2] for e in spec.process.env),
                    ),
                )
            )
    if own_mounts:
        steps.append(("pivot_root", lambda: rootfs.pivot(sys, root)))
    else:
        steps.append(("chroot", lambda: rootfs.chroot_into(sys, root)))
    if ctx.console_socket is not None:
        sock = ctx.console_socket

        def make_console() -> None:
            from .console import setup

            setup(sys, sock, spec.process.console_size, mount=True)

        steps.append(("console", make_console))
    if spec.process.cwd:
        # runc's: a missing cwd is made inside the jail, root's, before "/" may go read-only
        cwd = spec.process.cwd
        steps.append(("make cwd", lambda: process.make_cwd(cwd)))
    if spec.sysctl:
        # Before the read-only paths: /proc/sys is one of them.
        steps.append(("sysctl", lambda: rootfs.write_sysctls(dict(spec.sysctl))))
    steps += [
        # runc's order: read-only paths first, then masks (a mask may sit under a read-only path)
        ("readonly paths", lambda: mounts.readonly_paths(sys, spec.readonly_paths)),
        ("masked paths", lambda: mounts.mask_paths(sys, spec.masked_paths)),
    ]
    if spec.root_readonly:
        steps.append(("readonly rootfs", lambda: rootfs.readonly_root(sys)))
    if rootfs.propagates_after_pivot(spec.rootfs_propagation):
        # After the read-only paths: binding one onto itself is EINVAL under an unbindable "/".
        steps.append(
            ("root propagation", lambda: rootfs.set_root_propagation(sys, spec.rootfs_propagation))
        )
    if spec.hostname:
        steps.append(("hostname", lambda: sys.sethostname(spec.hostname or "")))
    if spec.domainname:
        steps.append(("domainname", lambda: sys.setdomainname(spec.domainname or "")))
    if spec.personality is not None:
        persona = spec.personality
        steps.append(("personality", lambda: _set_personality(sys, persona)))
    return steps


def _parent_death_signal(sys: Syscalls, sig: int) -> None:
    sys.prctl(PR_SET_PDEATHSIG, sig)


def _set_personality(sys: Syscalls, persona: int) -> None:
    sys.personality(persona)


def _wait_for_start(fifo_fd: int) -> int:
    """Block until `start` opens exec.fifo for reading, then tell it we are going; returns the
    write end, which stays open (O_CLOEXEC) until the execve.

    The fifo lives in the host state dir, out of reach after pivot_root; the O_PATH fd opened by
    the creator is reopened through /proc/self/fd (runc's trick). `start` reads the byte, then
    waits for EOF: the execve closing the write end tells it the user process runs, so its
    poststart hooks come after that, as the runtime-spec says (runc 1.1 and crun run them as soon
    as the byte arrives, before the execve).
    """
    fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, b"0")
    except BaseException:
        os.close(fd)
        raise
    finally:
        os.close(fifo_fd)
    return fd


def run(ctx: InitContext) -> NoReturn:
    """The whole init; reports "ready" or an error on the sync pipe; ends in exec or exits."""
    prepared = PreparedProcess()
    program = ctx.seccomp
    if program is not None:
        # first of all: arming imports modules from files that pivot_root leaves behind
        run_steps([("seccomp", lambda: arm_seccomp(program, prepared))])
    if _uses_userns(ctx.spec):
        from . import userns  # preloaded

        run_steps(userns.early_steps(ctx))
    run_steps(container_steps(ctx))
    run_steps(process_steps(ctx.sys, ctx.spec.process, prepared))
    # from "ready" on the init outlives its creator (`cri-oci create` exits), as runc's does
    _parent_death_signal(ctx.sys, 0)
    sync.send(ctx.sync_fd, {"type": "ready"})
    os.close(ctx.sync_fd)
    # From here on errors can no longer reach the creator: it has returned. They go to the
    # container's stderr once installed (runc's init logs them the same way).
    try:
        started = _wait_for_start(ctx.fifo_fd)
        # with a terminal, the console step already made the pty slave fds 0-2
        stdio = (0, 1, 2) if ctx.console_socket is not None else ctx.stdio
        # keep `started` clear of the fds about to be installed at 0..2+len(extra_fds)
        moved = fcntl.fcntl(started, fcntl.F_DUPFD_CLOEXEC, 3 + len(ctx.extra_fds))
        os.close(started)
        started = moved
        process.install_stdio(stdio, ctx.extra_fds)
        if ctx.spec.hooks.get("startContainer"):
            from . import hooks  # preloaded

            # as the container user, in the container, before the execve
            state = hook_state(ctx, "created")
            run_steps(
                [
                    (
                        "startContainer hooks",
                        lambda: hooks.run_hooks(
                            ctx.spec.hooks, ("startContainer",), state, default_env=prepared.env
                        ),
                    )
                ]
            )
        process.reset_signals()
        process.close_other_fds(keep=(started,), start=3 + len(ctx.extra_fds))
        install_seccomp(prepared)
        assert prepared.env is not None
        process.execute(prepared.path, ctx.spec.process.args, prepared.env)
    except BaseException as e:  # noqa: BLE001 - nobody else is left to report it
        try:
            os.write(2, f"cri-oci init: {e}\n".encode())
        finally:
            os._exit(127 if isinstance(e, OSError) else 1)
    raise AssertionError("unreachable")
