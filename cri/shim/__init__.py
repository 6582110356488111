"""The per-container monitor ("shim", like CRI-O's conmon) and the daemon's client for it.

A shim is its own program (`python -m cri.shim`), forked from the daemon's fork server
(`cri.shim.forkserver`, a pre-loaded process: no interpreter start per container) or started
cold; the daemon never forks without exec, and containers must outlive daemon restarts. Once
its container is created, the shim execs the compiled loop (`cri.shim.loop`, about 0.1 MiB),
which does the rest. One shim per container:

- creates the container (in-tree `cri.oci.create`, or `<runtime> create` for an OCI runtime binary
  such as runc) with pipes as its stdio; the daemon later runs the OCI `start` itself;
- reports one JSON line on the sync fd: `{"pid": N, "shim_pid": M}` or `{"error": "..."}`
  (then nothing is left behind: no process, no runtime state, no files but shim.log);
- copies stdout/stderr into the CRI log at `--log-path` (`cri.logs`), and serves the control socket
  (`ping`, `reopen_log`);
- is the child subreaper of the container's init: it reaps it and, once the output has drained
  (at most 2 s after the exit), writes the exit file and exits 0.

Files in the state directory (the daemon creates it and removes it):
    shim.log   the shim's own diagnostics        shim.pid   the shim's pid
    shim.sock  control socket (while running)    pid        the container init's pid
    exit       JSON exit status (when done)      runtime.log  the OCI runtime binary's log

Daemon side (`cri.shim.client`):
    start_shim(...) -> int                 the init's pid; read_shim_pid(state_dir) gives the shim's
    ShimClient(state_dir).ping() -> int    .reopen_log() -> None
    read_exit_file(state_dir) -> ExitStatus | None
The wire formats are in `cri.shim.protocol`.
"""

from cri.shim.client import ShimClient, read_exit_file, read_shim_pid, start_shim
from cri.shim.errors import (
    ShimError,
    ShimRequestError,
    ShimStartError,
    ShimStartTimeout,
    ShimUnavailable,
    TaskRefused,
)
from cri.shim.protocol import ExitStatus, ProtocolError

__all__ = [
    "ExitStatus",
    "ProtocolError",
    "ShimClient",
    "ShimError",
    "ShimRequestError",
    "ShimStartError",
    "ShimStartTimeout",
    "ShimUnavailable",
    "TaskRefused",
    "read_exit_file",
    "read_shim_pid",
    "start_shim",
]
