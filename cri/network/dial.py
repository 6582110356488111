"""A TCP connection to a port inside a pod's network namespace, for port-forward.

setns(2) moves only the calling thread, so a fresh thread enters the namespace, connects and
ends; the socket stays in the namespace it was made in. Nothing runs inside the container.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Final

from cri.oci import syscalls as sc
from cri.oci.syscalls import RealSyscalls

CONNECT_TIMEOUT_S: Final = 10.0


def dial(netns_path: str, port: int, timeout: float = CONNECT_TIMEOUT_S) -> socket.socket:
    """Connect to localhost:`port` in the namespace pinned at `netns_path` ("" is the
    daemon's own, for host-network pods), IPv4 first, then IPv6 (as containerd does)."""
    if not netns_path:
        return _connect(port, timeout)
    result: list[socket.socket | BaseException] = []

    def run() -> None:
        try:
            ns = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            result.append(OSError(f"the pod's network namespace is gone: {exc}"))
            return
        try:
            # NOTE: the thread never goes back to the daemon's namespace; it just ends, so no
            # later code can run in the pod's by mistake.
            RealSyscalls().setns(ns, sc.CLONE_NEWNET)
            result.append(_connect(port, timeout))
        except BaseException as exc:
            result.append(exc)
        finally:
            os.close(ns)

    thread = threading.Thread(target=run, name=f"dial-{port}", daemon=True)
    thread.start()
    thread.join()
    outcome = result[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _connect(port: int, timeout: float) -> socket.socket:
    errors: list[str] = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
        except OSError as exc:
            sock.close()
            errors.append(f"{host}: {exc.strerror or exc}")
            continue
        sock.settimeout(None)
        return sock
    raise ConnectionError(f"failed to connect to localhost:{port} inside the pod: "
                          + "; ".join(errors))
