"""Entry point of the shim program: `python -m cri.shim --id ID --bundle DIR ...`.

Only the daemon starts it, through `cri.shim.client.start_shim`; the arguments are that contract.
`python -m cri.shim --fork-server --socket-fd F` is the daemon's fork server
(`cri.shim.forkserver`), which forks shims given those same arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cri.shim.monitor import Monitor, ShimConfig, daemonize, report
from cri.shim.protocol import SyncError


@functools.cache
def _parser() -> argparse.ArgumentParser:
    # NOTE: built once, in the fork server before any fork (fork_server_main): building it in
    # each fresh fork took 2-3 ms of a shim's start, most of it argparse's set-up.
    parser = argparse.ArgumentParser(prog="python -m cri.shim", description=__doc__)
    parser.add_argument("--id", required=True, dest="container_id")
    parser.add_argument("--bundle", required=True, type=Path)
    parser.add_argument("--oci-root", required=True, type=Path)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--sync-fd", required=True, type=int)
    parser.add_argument("--log-path", type=Path, default=None)
    parser.add_argument("--stdin", action="store_true", help="keep a stdin pipe for attach")
    parser.add_argument("--stdin-once", action="store_true",
                        help="the first attach that ends its stdin closes the container's")
    parser.add_argument("--tty", action="store_true", help="the process gets a terminal")
    parser.add_argument(
        "--runtime", default=None, help="OCI runtime binary (runc); default: the in-tree executor"
    )
    return parser


def parse_args(argv: Sequence[str]) -> ShimConfig:
    args = _parser().parse_args(argv)
    # Absolute before daemonize() changes directory.
    return ShimConfig(
        container_id=args.container_id,
        bundle=args.bundle.absolute(),
        oci_root=args.oci_root.absolute(),
        state_dir=args.state_dir.absolute(),
        sync_fd=args.sync_fd,
        log_path=None if args.log_path is None else args.log_path.absolute(),
        stdin=args.stdin,
        stdin_once=args.stdin_once,
        tty=args.tty,
        runtime=args.runtime,
    )


def main(argv: Sequence[str] | None = None, *, fork: bool = True) -> int:
    """`fork=False`: already in a fresh fork of the fork server (see daemonize)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--fork-server"]:
        return fork_server_main(args[1:])
    config = parse_args(args)
    try:
        daemonize(config.state_dir, fork=fork)
    except OSError as exc:
        with contextlib.suppress(OSError):
            report(
                config.sync_fd, SyncError(f"shim: cannot daemonize in {config.state_dir}: {exc}")
            )
        return 1
    return run(config)


def run(config: ShimConfig) -> int:
    # From here on we are the detached shim; stderr is <state-dir>/shim.log.
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if os.environ.get("CRI_SHIM_DEBUG") else logging.INFO,
        format=f"%(asctime)s shim[{os.getpid()}] {config.container_id[:12]} "
        "%(levelname)s %(name)s: %(message)s",
    )
    return Monitor(config).run()


def fork_server_main(argv: Sequence[str]) -> int:
    import socket

    from cri.shim.forkserver import OCI, SHIM, serve

    parser = argparse.ArgumentParser(prog="python -m cri.shim --fork-server")
    parser.add_argument("--socket-fd", required=True, type=int)
    args = parser.parse_args(argv)
    # What every shim or exec imports, before and after it runs: the executor's commands, the
    # cgroup managers (every create and exec), seccomp (RuntimeDefault pods), the console and
    # its proxy (tty containers and execs). Loaded once here, shared by every fork.
    import cri.oci.cgroups.detect  # noqa: F401
    import cri.oci.cgroups.v1  # noqa: F401
    import cri.oci.cgroups.v2  # noqa: F401
    import cri.oci.cli  # noqa: F401
    import cri.oci.console  # noqa: F401
    import cri.oci.create  # noqa: F401
    import cri.oci.delete  # noqa: F401
    import cri.oci.exec  # noqa: F401
    import cri.oci.seccomp  # noqa: F401
    import cri.oci.tty_proxy  # noqa: F401

    _parser()
    return serve(socket.socket(fileno=args.socket_fd), {SHIM: fork_shim, OCI: fork_oci})


def fork_shim(args: list[str], fds: list[int]) -> int:
    """In a fresh fork of the server: be the shim those arguments describe."""
    return main([*args, "--sync-fd", str(fds[0])], fork=False)


def fork_oci(args: list[str], fds: list[int]) -> int:
    """In a fresh fork of the server: run `cri-oci ARGS` with the given stdio, and report its pid
    and exit code on the status fd."""
    stdin, stdout, stderr, status = fds
    code = 1
    try:
        os.setsid()  # as a terminal's command line needs; harmless without one
        os.set_inheritable(status, False)
        os.write(status, b'{"pid": %d}\n' % os.getpid())
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
            os.close(fd)
        from cri.oci.cli import main as oci_main

        code = oci_main(args)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(OSError):
            os.write(status, b'{"exit_code": %d}\n' % code)
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
