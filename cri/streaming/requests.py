"""What Exec, Attach and PortForward hand to the streaming server, and the one-shot tokens that
name them in a URL (cri-streaming `request_cache.go`: 8 base64url characters, single use, one
minute to live, at most 1000 in flight)."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from cri.errors import InvalidArgument, Unavailable

TOKEN_TTL_S: Final = 60.0
MAX_IN_FLIGHT: Final = 1000


@dataclass(frozen=True, slots=True)
class ExecRequest:
    container_id: str
    cmd: tuple[str, ...]
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool


@dataclass(frozen=True, slots=True)
class AttachRequest:
    container_id: str
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool


@dataclass(frozen=True, slots=True)
class PortForwardRequest:
    pod_sandbox_id: str
    ports: tuple[int, ...]  # may be empty: a SPDY client names each port in its stream headers


StreamRequest = ExecRequest | AttachRequest | PortForwardRequest


def validate_streams(tty: bool, stdin: bool, stdout: bool, stderr: bool) -> None:
    """cri-streaming's rules for exec and attach."""
    if tty and stderr:
        raise InvalidArgument("tty and stderr cannot both be true: a terminal has one output")
    if not (stdin or stdout or stderr):
        raise InvalidArgument("one of stdin, stdout or stderr must be requested")


def validate_ports(ports: tuple[int, ...]) -> None:
    for port in ports:
        if not 0 < port < 65536:
            raise InvalidArgument(f"port {port} is not in 1-65535")


class TokenCache:
    """Tokens for requests, each redeemable once within its TTL. Shared between the gRPC
    threads (insert) and the streaming server (consume)."""

    def __init__(self, ttl: float = TOKEN_TTL_S, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._ttl = ttl
        self._max = max_in_flight
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, StreamRequest]] = OrderedDict()

    def insert(self, request: StreamRequest) -> str:
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            if len(self._entries) >= self._max:
                raise Unavailable(f"{self._max} streaming requests are already waiting for "
                                  "their client; try again later")
            while True:
                token = base64.urlsafe_b64encode(secrets.token_bytes(6)).decode()
                if token not in self._entries:
                    break
            self._entries[token] = (now + self._ttl, request)
            return token

    def consume(self, token: str) -> StreamRequest | None:
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            entry = self._entries.pop(token, None)
        return None if entry is None else entry[1]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _expire(self, now: float) -> None:
        # Insertion order is expiry order: every entry has the same TTL.
        while self._entries:
            token, (deadline, _) = next(iter(self._entries.items()))
            if deadline > now:
                break
            del self._entries[token]
