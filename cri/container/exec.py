"""Exec (streaming): the command runs when the client connects to the URL, through the OCI
command line with pipes or a terminal (cri.task.interactive)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cri.container.exec_sync import running_container, write_process_file
from cri.streaming.requests import ExecRequest, validate_streams
from cri.task.interactive import InteractiveProcess

if TYPE_CHECKING:
    from cri.container.model import Container
    from cri.container.service import ContainerService


def check_exec(svc: ContainerService, request: ExecRequest) -> Container:
    """What the Exec RPC refuses before handing out a URL; the container it names."""
    validate_streams(request.tty, request.stdin, request.stdout, request.stderr)
    return running_container(svc, request.container_id, request.cmd)


def start_exec(svc: ContainerService, request: ExecRequest) -> InteractiveProcess:
    """Called on the streaming server's loop when the client has connected."""
    container = running_container(svc, request.container_id, request.cmd)
    process_file = write_process_file(svc, container, request.cmd, tty=request.tty)
    pid_file = process_file.with_suffix(".pid")
    runner = svc.runner(container)

    def cleanup() -> None:
        process_file.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)

    try:
        return InteractiveProcess.start(
            runner.exec_spawn(container.id, process_file, pid_file), tty=request.tty,
            stdin=request.stdin, stdout=request.stdout, stderr=request.stderr,
            kill=lambda proc: runner.kill_exec(proc, pid_file),
            cleanup=cleanup)
    except BaseException:
        cleanup()
        raise
