"""Entry point of the shim program: `python -m cri.shim --id ID --bundle DIR ...`.

Only the daemon starts it, through `cri.shim.client.start_shim`; the arguments are that contract.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cri.shim.monitor import Monitor, ShimConfig, daemonize, report
from cri.shim.protocol import SyncError


def parse_args(argv: Sequence[str]) -> ShimConfig:
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
    args = parser.parse_args(argv)
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


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        daemonize(config.state_dir)
    except OSError as exc:
        with contextlib.suppress(OSError):
            report(
                config.sync_fd, SyncError(f"shim: cannot daemonize in {config.state_dir}: {exc}")
            )
        return 1
    # From here on we are the detached shim; stderr is <state-dir>/shim.log.
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if os.environ.get("CRI_SHIM_DEBUG") else logging.INFO,
        format=f"%(asctime)s shim[{os.getpid()}] {config.container_id[:12]} "
        "%(levelname)s %(name)s: %(message)s",
    )
    return Monitor(config).run()


if __name__ == "__main__":
    sys.exit(main())
