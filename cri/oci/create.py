"""create: validate, make the state dir, cgroup and fifo, fork the init, wait until it is ready.

The init talks to us over a socketpair (sync.py): with a user namespace "userns" (write its id
mappings, answer "mapped") and "child" (reap the first child, answer "reparented"); "hooks" (run
prestart/createRuntime hooks now, in our namespaces, then answer "resume"), then "ready" or
"error".

Process contract (for the shim and the CLI):
- The init is a *direct child* of the caller of create() (pid/time namespaces are entered by
  switching the caller's pid_for_children around the fork, no double fork; with a user namespace
  the init forks into its pid namespace itself and the caller, a child subreaper for that moment,
  adopts it: userns.py), so the caller reaps it with waitpid and gets its exit status. If the
  caller exits first (the CLI), the init is reparented to the nearest subreaper
  (PR_SET_CHILD_SUBREAPER) or to the host's init, as with runc.
- The caller must be single-threaded during create() (fork without exec, namespace switch).
- On any failure nothing is left: the init is killed and reaped, the cgroup and state dir removed.
"""

from __future__ import annotations

import os

from . import cgroups, fds, lazylog, namespaces, sync
from .cgroups import warmup
from .devices import DEFAULT_ALLOW_RULES
from .errors import ContainerExists, InitFailed
from .init import InitContext, preload, run, run_steps, seccomp_profile
from .records import replace
from .signals import SIGKILL
from .spec import Spec, load_spec
from .statefile import (
    OCI_VERSION,
    Record,
    container_dir,
    now_rfc3339,
    proc_stat,
    remove_dir,
    save,
    save_exec_brief,
    write_atomically,
)
from .syscalls import PR_SET_CHILD_SUBREAPER, RealSyscalls, Syscalls
from .undo import Undo

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket as _socket
    from collections.abc import Sequence

    from .seccomp.bpf import Program
    from .statefile import StrPath
else:
    import _socket  # socketpair without socket.py's enums and selectors (5 ms)

log = lazylog.getLogger(__name__)

#: how long the init may take to mount and get ready (a slow overlay or a loaded host)
READY_TIMEOUT = 60.0


def _resources_with_devices(spec: Spec) -> dict[str, object]:
    """The spec's resources plus runc's default device allow-list and the spec's own devices."""
    resources = dict(spec.resources)
    rules: list[object] = list(spec.resources.get("devices") or [])
    rules += list(DEFAULT_ALLOW_RULES)
    for d in spec.devices:
        if d.type == "p":
            continue  # a FIFO is no device: the device cgroup knows only a, b and c (EINVAL)
        rules.append(
            {
                "allow": True,
                "type": "c" if d.type == "u" else d.type,
                "major": d.major,
                "minor": d.minor,
                "access": "rwm",
            }
        )
    if spec.resources.get("devices") is not None or spec.devices:
        resources["devices"] = rules
    return resources


def _shared_rootfs_mount(spec: Spec) -> int:
    """The rootfs bind the init made in our mount namespace when it has none of its own (see
    rootfs.py), for delete to detach; 0 otherwise."""
    if spec.namespace("mount") is not None:
        return 0
    from .rootfs import read_mountinfo, top_mount_id

    return top_mount_id(os.path.realpath(spec.root), read_mountinfo()) or 0


def _reap(pid: int) -> None:
    try:  # noqa: SIM105 - contextlib costs 3 ms to import (see undo.py)
        os.kill(pid, SIGKILL)
    except ProcessLookupError:
        pass
    try:  # noqa: SIM105
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _open_stdio(fds: tuple[int | None, int | None, int | None], undo: Undo) -> tuple[int, int, int]:
    """The caller's fds, with /dev/null (closed when `undo` unwinds) in place of None."""
    null = -1
    if None in fds:
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        undo.callback(os.close, null)
    a, b, c = (null if fd is None else fd for fd in fds)
    return a, b, c


def create(
    root: StrPath,
    container_id: str,
    bundle: StrPath,
    *,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    pid_file: StrPath | None = None,
    console_socket: StrPath | None = None,
    preserve_fds: Sequence[int] = (),
    listen_fds: int = 0,
    sys: Syscalls | None = None,
) -> int:
    """Create the container and return the init's host pid (blocked until `start`).

    console_socket: where the pty master goes when process.terminal (required then, refused
    otherwise, as runc). preserve_fds: caller fds that become 3, 4, ... in the container; the
    first `listen_fds` of them are socket-activation fds (LISTEN_FDS/LISTEN_PID=1 in its env).
    """
    sys = sys or RealSyscalls()
    cdir = container_dir(root, container_id)
    bundle_dir = os.path.abspath(bundle)
    spec = load_spec(bundle_dir)
    console = spec.process.terminal or console_socket is not None
    if console:
        from .console import check_request

        check_request(spec.process.terminal, console_socket)
    # modules for this spec's optional steps, while they can still be imported (init.py)
    preload(spec, console=console)
    fds.check(preserve_fds)
    if listen_fds:
        proc = spec.process
        env = proc.env + fds.activation_env(min(listen_fds, len(preserve_fds)))
        spec = replace(spec, process=replace(proc, env=env))
    os.makedirs(root, mode=0o711, exist_ok=True)
    try:
        os.mkdir(cdir, 0o711)
    except FileExistsError:
        raise ContainerExists(f"container {container_id!r} already exists") from None

    with Undo() as undo:
        # the init's cgroup migration waits for a grace period: let it pass meanwhile (warmup.py)
        warmup.start()
        undo.callback(warmup.stop)
        undo.callback(remove_dir, cdir)
        fifo = os.path.join(cdir, "exec.fifo")
        os.mkfifo(fifo, 0o622)
        # chmod, not the mkfifo mode: our umask would strip the write bits a non-root init needs.
        os.chmod(fifo, 0o622)
        fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        undo.callback(os.close, fifo_fd)

        cgroup = cgroups.new_manager(cgroups.resolve_path(spec.cgroups_path, container_id))
        undo.callback(cgroup.destroy)
        cgroup.create(_resources_with_devices(spec))

        stdio = _open_stdio((stdin, stdout, stderr), undo)
        console_fd: int | None = None
        if console_socket is not None:
            from .console import connect

            console_fd = connect(console_socket)
            undo.callback(os.close, console_fd)
        join_fds = namespaces.open_paths(spec.namespaces)
        for _, fd in join_fds:
            undo.callback(os.close, fd)
        ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        read_fd, write_fd = ours.detach(), theirs.detach()
        undo.callback(os.close, read_fd)

        program = compile_profile(spec)
        ctx = InitContext(
            spec,
            sys,
            write_fd,
            fifo_fd,
            stdio,
            cgroup,
            join_fds,
            container_id=container_id,
            console_socket=console_fd,
            extra_fds=tuple(preserve_fds),
            seccomp=program,
        )
        # With a user namespace and a new pid namespace the init is our grandchild (userns.py):
        # as a child subreaper meanwhile we adopt it when its parent exits, so it is our child.
        user_ns = spec.namespace("user") is not None  # userns.in_use, without importing it
        adopt = False
        if user_ns:
            from . import userns

            adopt = userns.double_fork(spec) and not sys.child_subreaper()
        if adopt:
            sys.prctl(PR_SET_CHILD_SUBREAPER, 1)
            undo.callback(sys.prctl, PR_SET_CHILD_SUBREAPER, 0)
        # Switching pid namespaces and forking are fine beside the warm-up thread (the child has
        # none: it only inherits its O_CLOEXEC fd), so its grace period may go on while the init
        # sets up (it joins the cgroup late: init.py). Time and user namespaces need a
        # single-threaded caller (setns: EUSERS, EINVAL): then it ends first.
        if user_ns or spec.namespace("time") is not None:
            warmup.stop()
        try:
            with namespaces.for_children(sys, spec.namespaces, spec.time_offsets):
                pid = os.fork()
                if pid == 0:
                    _child(ctx, read_fd)
        finally:
            os.close(write_fd)
            warmup.stop()
        init = [pid]  # the grandchild once the first child has said so
        undo.callback(lambda: _reap(init[0]))

        while True:
            message = sync.receive(read_fd, READY_TIMEOUT)
            if message is None:
                raise InitFailed("container init exited without reporting")
            kind = message.get("type")
            if kind == "error":
                sync.raise_error(message)
            if kind == "ready":
                break
            if kind == "userns":
                from . import userns

                userns.write_mappings(init[0], spec)
                sync.send(read_fd, {"type": "mapped"})
                continue
            if kind == "child" and isinstance(message.get("pid"), int):
                os.waitpid(init[0], 0)  # it exits at once, leaving us its child, the init
                init[0] = message["pid"]
                sync.send(read_fd, {"type": "reparented"})
                continue
            if kind != "hooks":
                raise InitFailed(f"unexpected message from init: {message}")
            from . import hooks

            state = hooks.hook_state(
                oci_version=OCI_VERSION,
                container_id=container_id,
                status="creating",
                pid=init[0],
                bundle=bundle_dir,
                annotations=spec.annotations,
            )
            # runc runs them from the bundle (runc create chdirs there)
            hooks.run_hooks(spec.hooks, hooks.RUNTIME_CREATE, state, cwd=bundle_dir)
            sync.send(read_fd, {"type": "resume"})
        pid = init[0]
        if adopt:
            sys.prctl(PR_SET_CHILD_SUBREAPER, 0)

        pid_start = proc_stat(pid)
        if pid_start is None:
            raise InitFailed("container init died right after set-up")
        record = Record(
            id=container_id,
            pid=pid,
            pid_start=pid_start[1],
            bundle=bundle_dir,
            rootfs=spec.root,
            created=now_rfc3339(),
            annotations=dict(spec.annotations),
            cgroup_version=cgroup.version,
            cgroup_paths=cgroup.paths,
            namespace_paths=namespaces.paths_for(pid, spec.namespaces),
            resources=dict(spec.resources),
            hooks=dict(spec.raw.get("hooks") or {}),
            rootfs_mount_id=_shared_rootfs_mount(spec),
        )
        save_exec_brief(cdir, program, apparmor=bool(spec.process.apparmor_profile))
        save(root, record)
        if pid_file is not None:
            path = os.fspath(pid_file)
            write_atomically(os.path.dirname(path) or ".", os.path.basename(path), str(pid))
        # Success: keep the state dir, cgroup and init; close only our temporary fds.
        undo.pop_all()
        for fd in (fifo_fd, read_fd, *(fd for _, fd in join_fds)):
            os.close(fd)
        if console_fd is not None:
            os.close(console_fd)
        for fd in set(stdio) - {stdin, stdout, stderr}:
            os.close(fd)  # the /dev/null stand-in
        log.info(
            "created container %s pid %d", container_id, pid, extra={"container_id": container_id}
        )
        return pid
    raise AssertionError("unreachable")


def compile_profile(spec: Spec) -> Program | None:
    """The spec's seccomp filter, compiled here, before the fork: the init installs it, and
    exec.brief keeps it for the compiled front end's exec (front/exec.c), which installs the
    filter the container was created with, as runc does, without compiling it again. Its
    errors read as the init's did ("step seccomp: ...")."""
    profile = seccomp_profile(spec.raw)
    if profile is None:
        return None
    from .seccomp import compile_seccomp

    compiled: list[Program] = []
    run_steps([("seccomp", lambda: compiled.append(compile_seccomp(profile)))])
    return compiled[0]


def _child(ctx: InitContext, read_fd: int) -> None:
    """The forked init: never returns into the caller's stack."""
    code = 1
    try:
        os.close(read_fd)
        run(ctx)
    except BaseException as e:  # noqa: BLE001 - everything must reach the creator
        try:
            sync.send_error(ctx.sync_fd, e)
        except OSError:
            # after "ready" the pipe is gone: say it on the container's stderr, runc-style
            try:  # noqa: SIM105
                os.write(2, f"cri-oci init: {e}\n".encode())
            except OSError:
                pass
        code = 127 if isinstance(e, OSError) else 1
    finally:
        os._exit(code)
