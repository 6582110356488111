"""The HTTP side of a streaming connection, sans-I/O: the request head, routing, and the upgrade
answers (SPDY/3.1 with X-Stream-Protocol-Version, or WebSocket with Sec-WebSocket-Protocol).

Rules as in apimachinery's `httpstream.Handshake` and cri-streaming's wsstream: the client's
protocols are tried in the client's order and the first the server speaks wins; no
X-Stream-Protocol-Version at all is 400, none in common is 403 naming what is accepted.
"""

from __future__ import annotations

import enum
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cri.streaming import websocket

MAX_HEAD: Final = 16 * 1024

PROTOCOL_HEADER: Final = "x-stream-protocol-version"
ACCEPTED_HEADER: Final = "X-Accepted-Stream-Protocol-Versions"


class Kind(enum.Enum):
    EXEC = "exec"
    ATTACH = "attach"
    PORT_FORWARD = "portforward"


class BadRequest(Exception):
    def __init__(self, status: int, message: str,
                 headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.headers = tuple(headers)

    def response(self) -> bytes:
        return response(self.status, self.headers, str(self) + "\n")


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, list[str]]  # lowercased names

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    def header_list(self, name: str) -> list[str]:
        """Every value of a header, repeated or comma-separated."""
        out: list[str] = []
        for value in self.headers.get(name.lower(), []):
            out += [v.strip() for v in value.split(",") if v.strip()]
        return out

    @property
    def is_websocket(self) -> bool:
        return "websocket" in self.header("upgrade").lower()

    @property
    def is_spdy(self) -> bool:
        return self.header("upgrade").lower().startswith("spdy/3.1")

    def route(self) -> tuple[Kind, str]:
        """(kind, token) from `/exec/{token}`, `/attach/{token}` or `/portforward/{token}`."""
        if self.method not in ("GET", "POST"):
            raise BadRequest(405, f"method {self.method} not allowed", [("Allow", "GET, POST")])
        parts = self.path.strip("/").split("/")
        if len(parts) == 2 and parts[1]:
            for kind in Kind:
                if parts[0] == kind.value:
                    return kind, parts[1]
        raise BadRequest(404, f"no streaming endpoint at {self.path}")


def head_complete(buffer: bytes) -> int:
    """The length of the request head in `buffer` (through the blank line), or 0."""
    end = buffer.find(b"\r\n\r\n")
    return 0 if end < 0 else end + 4


def parse_request(head: bytes) -> Request:
    try:
        text = head.decode("latin-1")
        request_line, *lines = text.split("\r\n")
        method, target, version = request_line.split(" ")
    except ValueError:
        raise BadRequest(400, "malformed request line") from None
    if not version.startswith("HTTP/1."):
        raise BadRequest(505, f"{version} is not supported")
    headers: dict[str, list[str]] = {}
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, f"malformed header line {line!r}")
        headers.setdefault(name.lower(), []).append(value.strip())
    url = urllib.parse.urlsplit(target)
    return Request(method, url.path, urllib.parse.parse_qs(url.query, keep_blank_values=True),
                   headers)


def negotiate_spdy(request: Request, supported: Sequence[str]) -> tuple[str, bytes]:
    """The chosen protocol and the 101 answer, or BadRequest (400 / 403)."""
    offered = request.header_list(PROTOCOL_HEADER)
    if not offered:
        raise BadRequest(400, "unable to upgrade: X-Stream-Protocol-Version is required")
    chosen = next((p for p in offered if p in supported), None)
    if chosen is None:
        raise BadRequest(
            403,
            f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
            f"server accepts {list(supported)}",
            [(ACCEPTED_HEADER, p) for p in supported],
        )
    return chosen, response(101, [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
                                  ("X-Stream-Protocol-Version", chosen)])


def negotiate_websocket(request: Request, supported: Sequence[str]) -> tuple[str, bytes]:
    """The chosen subprotocol ("" when the client named none and "" is supported) and the 101
    answer, or BadRequest."""
    key = request.header("sec-websocket-key")
    if not key or request.header("sec-websocket-version") != "13":
        raise BadRequest(400, "a WebSocket upgrade needs Sec-WebSocket-Key and version 13")
    offered = request.header_list("sec-websocket-protocol") or [""]
    chosen = next((p for p in offered if p in supported), None)
    if chosen is None:
        raise BadRequest(403, f"none of the WebSocket protocols {offered} is supported; "
                              f"accepted: {[p for p in supported if p]}")
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Accept", websocket.accept_key(key))]
    if chosen:
        headers.append(("Sec-WebSocket-Protocol", chosen))
    return chosen, response(101, headers)


_REASONS: Final = {101: "Switching Protocols", 400: "Bad Request", 403: "Forbidden",
                   404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
                   431: "Request Header Fields Too Large", 500: "Internal Server Error",
                   505: "HTTP Version Not Supported"}


def response(status: int, headers: Sequence[tuple[str, str]] = (), body: str = "") -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if status != 101:
        data = body.encode()
        lines += ["Content-Type: text/plain; charset=utf-8", f"Content-Length: {len(data)}",
                  "Connection: close"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + data
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
