"""Helper process: `python -m cri.network.pin PATH` makes a network namespace pinned at PATH.

Kept to light imports (the executor's libc seam, fcntl, socket) so that it starts fast.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import sys

from cri.oci import syscalls as sc
from cri.oci.syscalls import RealSyscalls

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def pin(path: str) -> None:
    sys_ = RealSyscalls()
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)
    sys_.unshare(sc.CLONE_NEWNET)
    sys_.mount("/proc/self/ns/net", path, "none", sc.MS_BIND, None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def main() -> int:
    try:
        pin(sys.argv[1])
    except OSError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
