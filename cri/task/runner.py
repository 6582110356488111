"""Start, signal, wait for and delete tasks, through the shim and the OCI runtime of a handler.

The in-tree executor is called as a library for the calls that do not fork (start, kill, delete,
state); runc or crun are called through the same OCI command line. Creating a task always goes
through the shim (forked from the daemon's fork server where it runs), which becomes the task's
parent, writes its log and its exit file, and outlives the daemon. `exec` always goes through
the OCI command line, since joining namespaces needs a fresh process: for the in-tree executor
its compiled `cri-oci exec`, or the Python one forked from the fork server (a terminal, or no
compiled front end), or `python -m cri.oci exec` without either.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cri.config import RuntimeHandler
from cri.errors import DeadlineExceeded, FailedPrecondition, Internal
from cri.shim import client as shim
from cri.shim.errors import ShimError, TaskRefused
from cri.shim.forkserver import ForkedProcess, ForkServer, ForkServerGone
from cri.subprocesses import helper_env, oci_cli_argv
from cri.task import exec_output, process_tree

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TaskExit:
    exit_code: int
    finished_at: int  # unix ns
    oom_killed: bool = False


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


def pid_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: with the pid, it names one process across pid reuse."""
    from cri.oci.statefile import proc_stat

    stat = proc_stat(pid)
    return None if stat is None else stat[1]


class TaskRunner:
    def __init__(self, oci_root: Path, handler: RuntimeHandler,
                 shim_server: ForkServer | None = None) -> None:
        self.oci_root = oci_root
        self.handler = handler
        self.shim_server = shim_server

    def _cli(self, *args: str) -> list[str]:
        if self.handler.binary:
            return [self.handler.binary, "--root", str(self.oci_root), *args]
        return oci_cli_argv("--root", str(self.oci_root), *args)

    def _run_cli(self, *args: str, timeout: float = 30.0) -> None:
        result = subprocess.run(self._cli(*args), capture_output=True, text=True,
                                timeout=timeout, env=helper_env())
        if result.returncode != 0:
            raise Internal(f"{' '.join(args[:1])} failed: {result.stderr.strip()}")

    def create_and_start(
        self, task_id: str, bundle: Path, state_dir: Path, *, log_path: Path | None,
        stdin: bool = False, stdin_once: bool = False, tty: bool = False,
    ) -> int:
        """Create the task under a new shim and start it; returns the task's host pid."""
        pid = self.create(task_id, bundle, state_dir, log_path=log_path, stdin=stdin,
                          stdin_once=stdin_once, tty=tty)
        self.start_created(task_id)
        return pid

    def start_created(self, task_id: str) -> None:
        """Start a created task; if that fails, the task is deleted."""
        try:
            self.start(task_id)
        except BaseException:
            self.delete(task_id, force=True)
            raise

    def create(
        self, task_id: str, bundle: Path, state_dir: Path, *, log_path: Path | None,
        stdin: bool = False, stdin_once: bool = False, tty: bool = False,
    ) -> int:
        """Create the task under a new shim, not yet started; returns the task's host pid."""
        state_dir.mkdir(parents=True, exist_ok=True)
        try:
            pid = shim.start_shim(
                task_id,
                bundle=bundle,
                oci_root=self.oci_root,
                state_dir=state_dir,
                log_path=log_path,
                stdin=stdin,
                stdin_once=stdin_once,
                tty=tty,
                runtime=self.handler.binary or None,
                server=self.shim_server,
            )
        except TaskRefused as exc:
            # What the container asks for (its cwd, executable, user, mounts) cannot be done:
            # the caller's to mend, not a fault of the runtime.
            raise FailedPrecondition(f"the OCI runtime refused to create {task_id}: {exc}"
                                     ) from None
        except ShimError as exc:
            raise Internal(f"creating task {task_id}: {exc}") from None
        return pid

    def start(self, task_id: str) -> None:
        if self.handler.binary:
            self._run_cli("start", task_id)
        else:
            import cri.oci

            cri.oci.start(self.oci_root, task_id)

    def kill(self, task_id: str, sig: int, *, all: bool = False) -> None:
        if self.handler.binary:
            args = ["kill", *(["--all"] if all else []), task_id, str(sig)]
            self._run_cli(*args)
            return
        import cri.oci

        cri.oci.kill(self.oci_root, task_id, sig, all=all)

    def update(self, task_id: str, resources: Mapping[str, Any]) -> None:
        """New cgroup limits for a live task (OCI `update`)."""
        if self.handler.binary:
            result = subprocess.run(self._cli("update", "--resources", "-", task_id),
                                    input=json.dumps(resources), capture_output=True, text=True,
                                    timeout=30)
            if result.returncode != 0:
                raise Internal(f"update {task_id}: {result.stderr.strip()}")
            return
        import cri.oci
        from cri.oci.errors import OciError

        try:
            cri.oci.update(self.oci_root, task_id, resources)
        except OciError as exc:
            raise Internal(f"update {task_id}: {exc}") from None

    def delete(self, task_id: str, *, force: bool = False) -> None:
        """Forget the task in the OCI runtime; a task it does not know is already deleted."""
        if self.handler.binary:
            result = subprocess.run(self._cli("delete", *(["--force"] if force else []), task_id),
                                    capture_output=True, text=True, timeout=30)
            if result.returncode != 0 and "not exist" not in result.stderr:
                raise Internal(f"delete {task_id}: {result.stderr.strip()}")
            return
        import cri.oci
        from cri.oci.errors import ContainerNotFound

        with contextlib.suppress(ContainerNotFound):
            cri.oci.delete(self.oci_root, task_id, force=force)

    @staticmethod
    def exit_status(state_dir: Path) -> TaskExit | None:
        status = shim.read_exit_file(state_dir)
        if status is None:
            return None
        return TaskExit(exit_code=status.exit_code, finished_at=status.finished_at,
                        oom_killed=status.oom_killed)

    @staticmethod
    def is_alive(pid: int, start_time: int | None) -> bool:
        return pid > 0 and pid_start_time(pid) == start_time

    @staticmethod
    def wait_exit(state_dir: Path, timeout: float, *, pid: int = 0,
                  pid_start: int | None = None) -> TaskExit | None:
        """Wait until the shim has written the exit file, at most `timeout` seconds. Given the
        task's process (`pid`, `pid_start`), first wait for it to be gone, through a pidfd."""
        deadline = time.monotonic() + timeout
        # NOTE: a killed task's exit file comes 2 to 5 ms after the signal, and its shim writes
        # it well under a millisecond after the process is gone. Checking is one failed open:
        # look often at first (a stop waits on this) and back off to 50 ms.
        delay = 0.001
        if pid > 0 and _wait_gone(pid, pid_start, deadline):
            delay = 0.0001
        while True:
            status = TaskRunner.exit_status(state_dir)
            if status is not None or time.monotonic() >= deadline:
                return status
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 0.05)

    def exec_sync(self, task_id: str, process_file: Path, timeout: float | None) -> ExecResult:
        """Run a process in the task and collect its output (bounded, see exec_output); `timeout`
        None or 0 means none. On timeout the process and all it started are killed."""
        pid_file = process_file.with_suffix(".pid")
        started = time.monotonic()
        args = _exec_args(task_id, process_file, pid_file)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        proc: ExecProcess | None = None
        try:
            try:
                proc = self._start_exec(args, None, out_w, err_w)
            finally:
                # Only the command line may hold the write ends, or EOF never comes.
                os.close(out_w)
                os.close(err_w)
            output = exec_output.collect({"stdout": out_r, "stderr": err_r},
                                         started + timeout if timeout else None)
            if output is None:
                self.kill_exec(proc, pid_file)
                raise DeadlineExceeded(
                    f"command in container {task_id} timed out after {timeout} s")
            proc.wait()
        finally:
            os.close(out_r)
            os.close(err_r)
            pid_file.unlink(missing_ok=True)
            if isinstance(proc, ForkedProcess):
                proc.close()
        assert proc is not None and proc.returncode is not None
        return ExecResult(exit_code=proc.returncode, stdout=output["stdout"].value(),
                          stderr=output["stderr"].value())

    def _start_exec(self, args: list[str], stdin: int | None, stdout: int, stderr: int,
                    *, new_session: bool = False) -> ExecProcess:
        """The exec command line with these fds (stdin None: /dev/null).

        NOTE: the in-tree executor's is its compiled front end where it is built (every
        install), which does a plain exec without Python (front/exec.c): an ExecSync of
        `true`, a probe, then takes 5 to 6 ms, against 13 to 17 for the Python exec forked from
        the shim fork server, which pays no interpreter start. What the front end hands over
        (see exec.c) starts the Python CLI, about 25 ms more, so an exec with a terminal
        (kubectl exec -it), which it always hands over, is forked from the fork server
        instead (always in a session of its own). runc is a binary."""
        front = None if self.handler.binary or new_session else compiled_front()
        if front is not None:
            return subprocess.Popen([str(front), "--root", str(self.oci_root), *args],
                                    stdin=subprocess.DEVNULL if stdin is None else stdin,
                                    stdout=stdout, stderr=stderr, env=helper_env())
        if not self.handler.binary and self.shim_server is not None:
            stdin_fd = os.open(os.devnull, os.O_RDONLY) if stdin is None else stdin
            try:
                return self.shim_server.run_oci(["--root", str(self.oci_root), *args],
                                                stdin_fd, stdout, stderr)
            except ForkServerGone:
                pass
            finally:
                if stdin is None:
                    os.close(stdin_fd)
        return subprocess.Popen(self._cli(*args),
                                stdin=subprocess.DEVNULL if stdin is None else stdin,
                                stdout=stdout, stderr=stderr, env=helper_env(),
                                start_new_session=new_session)

    def exec_spawn(self, task_id: str, process_file: Path, pid_file: Path
                   ) -> Callable[[int, int, int, bool], ExecProcess]:
        """What starts the OCI command line of an exec in the foreground (a streaming exec),
        given its stdin, stdout, stderr and whether it needs a session of its own."""
        args = _exec_args(task_id, process_file, pid_file)

        def spawn(stdin: int, stdout: int, stderr: int, new_session: bool) -> ExecProcess:
            return self._start_exec(args, stdin, stdout, stderr, new_session=new_session)

        return spawn

    @staticmethod
    def kill_exec(proc: ExecProcess, pid_file: Path) -> None:
        """The exec'd process and its descendants, then the OCI command line that ran it.

        The pid file names the process only while its parent is still that command line: a pid
        read after the process has gone may already be another's."""
        try:
            pid = int(pid_file.read_text())
        except (OSError, ValueError):
            pid = None  # not started yet: killing the command line is enough
        if pid is not None and proc.poll() is None and process_tree.parent_of(pid) == proc.pid:
            process_tree.kill_tree(pid)
            # Its parent reaps it and exits: killed first, runc would leave a zombie for the
            # node's init to reap, which a probe's next `pgrep` still sees.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(2)
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            log.warning("exec command line %d did not die after SIGKILL", proc.pid)


def _wait_gone(pid: int, pid_start: int | None, deadline: float) -> bool:
    """Wait until process `pid` (started at `pid_start`) has ended, or the deadline; whether
    it has. Any process can be waited for this way, not only a child."""
    import select

    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return True  # gone already (or no pidfd: the caller polls as before)
    try:
        # after pidfd_open: the pidfd cannot move to a reused pid, so this pins the identity
        if pid_start_time(pid) != pid_start:
            return True
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000))
    finally:
        os.close(pidfd)


def compiled_front() -> Path | None:
    """The executor's compiled front end, where it has been built (cri.oci.front)."""
    from cri.oci.front import BINARY

    return BINARY if BINARY.is_file() else None


def _exec_args(task_id: str, process_file: Path, pid_file: Path) -> list[str]:
    """The OCI command line's `exec`, in the foreground, of the process `process_file` holds."""
    return ["exec", "--pid-file", str(pid_file), "--process", str(process_file), task_id]


class ExecProcess(Protocol):
    """The exec command line as exec_sync watches it: a Popen, or one the fork server ran."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def kill(self) -> None: ...

