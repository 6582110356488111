"""What ExecSync collects: both output pipes read together, each kept up to OUTPUT_LIMIT bytes.

Exec probes run every few seconds on every node; a command that prints without end must neither
grow the daemon's memory nor stall on a full pipe, so what is over the limit is read and dropped,
and the kept part ends with TRUNCATED. The limit leaves both streams, marked, inside the 16 MiB
message that kubelet's gRPC client accepts (CRI-O caps at 16 MB for the same reason, CVE-2022-1708).
"""

from __future__ import annotations

import os
import selectors
import time
from dataclasses import dataclass, field

from cri.api import MAX_MESSAGE_BYTES

TRUNCATED = b"\n[output truncated by the runtime]\n"
OUTPUT_LIMIT = (MAX_MESSAGE_BYTES - 64 * 1024) // 2 - len(TRUNCATED)
_CHUNK = 64 * 1024


@dataclass(slots=True)
class BoundedBuffer:
    limit: int = OUTPUT_LIMIT
    parts: list[bytes] = field(default_factory=list)
    kept: int = 0
    dropped: int = 0

    def add(self, data: bytes) -> None:
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(data[:room])
            self.kept += min(room, len(data))
        self.dropped += max(len(data) - max(room, 0), 0)

    def value(self) -> bytes:
        return b"".join(self.parts) + (TRUNCATED if self.dropped else b"")


def collect(fds: dict[str, int], deadline: float | None,
            limit: int = OUTPUT_LIMIT) -> dict[str, BoundedBuffer] | None:
    """Read every fd (by name) to EOF; None if `deadline` (time.monotonic) passes first. The fds
    are left open for the caller to close."""
    buffers = {name: BoundedBuffer(limit) for name in fds}
    with selectors.DefaultSelector() as selector:
        for name, fd in fds.items():
            selector.register(fd, selectors.EVENT_READ, name)
        while selector.get_map():
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return None
            for key, _ in selector.select(wait):
                data = os.read(key.fd, _CHUNK)
                if data:
                    buffers[key.data].add(data)
                else:
                    selector.unregister(key.fd)
    return buffers
