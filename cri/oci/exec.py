"""exec: run another process inside a container's namespaces and cgroup.

The pid namespace is entered like in create (pid_for_children switched around the fork), so the
process is a direct child of the caller; it joins the cgroup and every other namespace of the init
itself, becomes a session leader (as under runc), takes a terminal from the container's devpts if
process.terminal (the master goes to `console_socket`, see console.py), then applies the process
object as the init does and execs. It gets PR_SET_PDEATHSIG=SIGKILL so killing the exec front end
kills it, unless it is detached (a detached one outlives the CLI, as under runc). `preserve_fds`
become fds 3, 4, ... of the process. The caller must be single-threaded (fork without exec).
"""

from __future__ import annotations

import os
from _collections_abc import Mapping  # collections.abc's home: collections itself costs 2 ms

from . import cgroups, fds, lazylog, namespaces, process, sync
from .errors import InvalidState
from .init import (
    PreparedProcess,
    install_seccomp,
    new_session,
    prepare_seccomp,
    process_steps,
    run_steps,
    seccomp_profile,
)
from .jsonio import loads
from .records import replace
from .signals import SIGKILL
from .spec import parse_process
from .statefile import CREATED, RUNNING, load, status_name
from .syscalls import PR_SET_PDEATHSIG, RealSyscalls, Syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from .init import Step
    from .spec import Process
    from .statefile import StrPath

# NOTE: `exec` is a kubelet probe's hot path: like start and kill, it imports no pathlib, json,
# logging, typing, enum or contextlib (tests/unit/oci/test_cli_imports.py). Whatever the child
# needs must be loaded before the fork too: it runs in the container's mount namespace (`preload`).

log = lazylog.getLogger(__name__)


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def exec_process(
    root: StrPath,
    container_id: str,
    process_spec: Mapping[str, Any],
    *,
    stdin: int | None,
    stdout: int | None,
    stderr: int | None,
    detach: bool = False,
    pid_file: StrPath | None = None,
    console_socket: StrPath | None = None,
    preserve_fds: Sequence[int] = (),
    die_with_caller: bool | None = None,
    sys: Syscalls | None = None,
) -> int:
    """`die_with_caller` (default: unless detached) gives the process PR_SET_PDEATHSIG=SIGKILL:
    a detached exec must outlive this command line, as under runc, unless the caller stays to
    watch it (the tty proxy)."""
    sys = sys or RealSyscalls()
    if die_with_caller is None:
        die_with_caller = not detach
    record = load(root, container_id)
    status = status_name(root, record)
    if status not in (CREATED, RUNNING):
        raise InvalidState(f"cannot exec in container {container_id!r} that is {status}")
    proc = parse_process(process_spec)
    prepared = PreparedProcess()
    config = _container_config(record.bundle)
    inherited = _container_apparmor(config)
    if proc.apparmor_profile is None and inherited:
        # runc: an exec'd process without a profile of its own gets the container's
        proc = replace(proc, apparmor_profile=inherited)
    profile = seccomp_profile(config)
    if profile is not None:
        # here, not in the child: its imports would come from the container's filesystem
        prepare_seccomp(profile, prepared)
    if proc.terminal or console_socket is not None:
        from .console import check_request

        check_request(proc.terminal, console_socket)
    fds.check(preserve_fds)
    preload(proc)
    console_fd: int | None = None
    if console_socket is not None:
        from .console import connect

        console_fd = connect(console_socket)
    ns_list = namespaces.of_process(record.pid)
    join_fds = namespaces.open_paths(ns_list)
    root_fd: int | None = None
    if record.rootfs_mount_id:
        # the container shares our mount namespace: its root is a chroot, entered the same way
        root_fd = os.open(f"/proc/{record.pid}/root", os.O_PATH | os.O_CLOEXEC)
    manager = cgroups.from_paths(record.cgroup_version, record.cgroup_paths)
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    stdio = tuple(null if fd is None else fd for fd in (stdin, stdout, stderr))
    read_fd, write_fd = os.pipe()
    try:
        try:
            with namespaces.for_children(sys, ns_list):
                pid = os.fork()
                if pid == 0:
                    _child(
                        sys,
                        manager,
                        join_fds,
                        proc,
                        stdio,
                        write_fd,
                        read_fd,
                        console_fd,
                        tuple(preserve_fds),
                        prepared,
                        root_fd,
                        die_with_caller,
                    )
        finally:
            os.close(write_fd)
            for _, fd in join_fds:
                os.close(fd)
            if root_fd is not None:
                os.close(root_fd)
            os.close(null)
            if console_fd is not None:
                os.close(console_fd)
        message = sync.receive(read_fd, 60.0)
        if message is not None:
            try:  # noqa: SIM105 - contextlib costs 3 ms to import
                os.kill(pid, SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            sync.raise_error(message)
    finally:
        os.close(read_fd)
    log.info("exec in %s pid %d", container_id, pid, extra={"container_id": container_id})
    if pid_file is not None:
        with open(pid_file, "w") as f:
            f.write(str(pid))
    if detach:
        return pid
    _, wstatus = os.waitpid(pid, 0)
    return exit_code(wstatus)


def preload(proc: Process) -> None:
    """Import what this process's optional steps need, before the fork (init.preload's rule; the
    console module, for a terminal, is loaded by `connect`)."""
    if proc.scheduler is not None:
        import struct  # noqa: F401 - SchedAttr.pack


def _container_config(bundle: str) -> Mapping[str, Any]:
    """The container's config.json: runc confines exec'd processes with its seccomp profile and
    AppArmor profile too. Read from the bundle (the record keeps no spec); a container whose
    config cannot be read is refused rather than entered unconfined."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path) as f:
            raw = loads(f.read())
    except (OSError, ValueError) as e:
        raise InvalidState(f"cannot read {path} for the container's seccomp profile: {e}") from None
    return raw if isinstance(raw, Mapping) else {}


def _container_apparmor(config: Mapping[str, Any]) -> str | None:
    process = config.get("process")
    profile = process.get("apparmorProfile") if isinstance(process, Mapping) else None
    return profile if isinstance(profile, str) and profile else None


def _chroot(sys: Syscalls, root_fd: int | None) -> None:
    if root_fd is not None:
        os.fchdir(root_fd)
        os.close(root_fd)
        sys.chroot(".")
        os.chdir("/")


def _child(
    sys: Syscalls,
    manager: cgroups.CgroupManager,
    join_fds: list[tuple[str, int]],
    proc: Process,
    stdio: tuple[int, ...],
    write_fd: int,
    read_fd: int,
    console_fd: int | None,
    extra_fds: tuple[int, ...],
    prepared: PreparedProcess,
    root_fd: int | None,
    die_with_caller: bool,
) -> None:
    code = 1
    try:
        os.close(read_fd)
        if die_with_caller:
            sys.prctl(PR_SET_PDEATHSIG, SIGKILL)
        steps: list[Step] = [
            ("join cgroup", lambda: manager.add(0)),
            ("join namespaces", lambda: namespaces.join(sys, join_fds)),
            ("chroot", lambda: _chroot(sys, root_fd)),
            ("setsid", lambda: new_session(sys)),
        ]
        if console_fd is not None:
            sock = console_fd

            def make_console() -> None:
                from .console import setup

                setup(sys, sock, proc.console_size, mount=False)

            steps.append(("console", make_console))
        run_steps(steps)
        run_steps(process_steps(sys, proc, prepared))
        # keep the error pipe clear of the fds about to be installed at 0..2+len(extra_fds)
        import fcntl

        write_fd = fcntl.fcntl(write_fd, fcntl.F_DUPFD_CLOEXEC, 3 + len(extra_fds))
        process.install_stdio((0, 1, 2) if console_fd is not None else stdio, extra_fds)
        process.reset_signals()
        process.close_other_fds(keep=(write_fd,), start=3 + len(extra_fds))
        install_seccomp(prepared)
        assert prepared.env is not None
        # write_fd is O_CLOEXEC: a successful exec closes it and the parent reads EOF.
        process.execute(prepared.path, proc.args, prepared.env)
    except BaseException as e:  # noqa: BLE001
        try:  # noqa: SIM105
            sync.send_error(write_fd, e)
        except OSError:
            pass
    finally:
        os._exit(code)
