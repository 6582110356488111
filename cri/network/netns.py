"""Pinned network namespaces (bind mounts of a namespace's /proc entry), as `ip netns` and CNI
expect.

unshare(2) of the network namespace moves only the calling thread, so a fresh thread makes the
namespace, pins it, brings its loopback up and ends: no thread that runs daemon code ever lives
in a pod's namespace, and no helper process is started (one cost 50 to 80 ms of interpreter
start-up per pod).
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import threading
from pathlib import Path
from typing import Final

from cri.oci import syscalls as sc
from cri.oci.syscalls import RealSyscalls
from cri.storage.mounts import unmount

_SIOCGIFFLAGS: Final = 0x8913
_SIOCSIFFLAGS: Final = 0x8914
_IFF_UP: Final = 0x1
_IFREQ: Final = struct.Struct("16sH14x")


def create_netns(path: Path) -> None:
    """Create a new network namespace, pinned at `path`, with its loopback up."""
    path.parent.mkdir(parents=True, exist_ok=True)
    errors: list[BaseException] = []
    made: list[bool] = []

    def run() -> None:
        try:
            _pin(path, made)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="netns-pin", daemon=True)
    thread.start()
    thread.join()
    if errors:
        if made:  # only what we made is ours to remove
            remove_netns(path)
        raise OSError(f"creating network namespace {path}: {errors[0]}")


def _pin(path: Path, made: list[bool]) -> None:
    syscalls = RealSyscalls()
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    made.append(True)
    syscalls.unshare(sc.CLONE_NEWNET)
    # NOTE: thread-self, not self: /proc/self names the thread group leader's namespace.
    syscalls.mount("/proc/thread-self/ns/net", str(path), "none", sc.MS_BIND, None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        flags = _IFREQ.unpack(fcntl.ioctl(sock, _SIOCGIFFLAGS, _IFREQ.pack(b"lo", 0)))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | _IFF_UP))


def remove_netns(path: Path) -> None:
    """Unpin and delete; safe to call on a path that was never (fully) created."""
    unmount(path)
    path.unlink(missing_ok=True)
