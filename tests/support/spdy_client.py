"""A SPDY/3.1 client for the tests: exec/attach with the channel protocols, and port-forward,
as client-go's remotecommand and portforward do (streams opened by the client, each waiting for
its SYN_REPLY). Blocking sockets; one reader at a time."""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from cri.streaming import spdy


class UpgradeRefused(Exception):
    def __init__(self, status: int, head: str) -> None:
        super().__init__(f"{status}: {head}")
        self.status = status
        self.head = head


def upgrade(url: str, protocols: list[str], *, timeout: float = 10.0) -> socket.socket:
    """Connect and upgrade to SPDY/3.1; UpgradeRefused with the status otherwise."""
    parts = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    lines = [f"POST {parts.path}?{parts.query} HTTP/1.1", f"Host: {parts.netloc}",
             "Connection: Upgrade", "Upgrade: SPDY/3.1"]
    lines += [f"X-Stream-Protocol-Version: {p}" for p in protocols]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(1)
        if not data:
            break
        head += data
    text = head.decode("latin-1")
    status = int(text.split(" ", 2)[1]) if text else 0
    if status != 101:
        rest = b""
        sock.settimeout(2)
        try:
            while chunk := sock.recv(4096):
                rest += chunk
        except OSError:
            pass
        sock.close()
        raise UpgradeRefused(status, text + rest.decode(errors="replace"))
    return sock


@dataclass
class Client:
    sock: socket.socket
    conn: spdy.Connection = field(default_factory=lambda: spdy.Connection(client=True))
    data: dict[int, bytearray] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)
    replied: set[int] = field(default_factory=set)
    reset: set[int] = field(default_factory=set)
    closed: bool = False

    def open(self, headers: dict[str, str]) -> int:
        sid = self.conn.open_stream({k: [v] for k, v in headers.items()})
        self.data[sid] = bytearray()
        self.flush()
        self.pump_until(lambda: sid in self.replied or sid in self.reset)
        return sid

    def flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def send(self, sid: int, data: bytes, fin: bool = False) -> None:
        self.conn.send_data(sid, data, fin=fin)
        self.flush()

    def pump_once(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        try:
            raw = self.sock.recv(65536)
        except TimeoutError:
            return
        except OSError:
            raw = b""
        if not raw:
            self.closed = True
            return
        for event in self.conn.receive_data(raw):
            if isinstance(event, spdy.StreamReplied):
                self.replied.add(event.stream_id)
            elif isinstance(event, spdy.DataReceived):
                self.data.setdefault(event.stream_id, bytearray()).extend(event.data)
                if event.fin:
                    self.finished.add(event.stream_id)
            elif isinstance(event, spdy.StreamReset):
                self.reset.add(event.stream_id)
        self.flush()

    def pump_until(self, done: Any, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if self.closed:
                raise ConnectionError("the server closed the connection")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the server did not answer in time")
            self.pump_once(min(left, 1.0))

    def pump_to_close(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.closed:
            if time.monotonic() > deadline:
                raise TimeoutError("the server kept the connection open")
            self.pump_once(1.0)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Command:
    """An exec or attach session over SPDY."""

    client: Client
    protocol: str
    streams: dict[str, int]

    @classmethod
    def start(cls, url: str, *, stdin: bool = False, stdout: bool = True, stderr: bool = False,
              tty: bool = False, protocols: tuple[str, ...] = ("v4.channel.k8s.io",)
              ) -> Command:
        sock = upgrade(url, list(protocols))
        client = Client(sock)
        streams = {"error": client.open({"streamType": "error"})}
        for name, wanted in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr),
                             ("resize", tty)):
            if wanted:
                streams[name] = client.open({"streamType": name})
        return cls(client, protocols[0], streams)

    def write(self, data: bytes, close: bool = False) -> None:
        self.client.send(self.streams["stdin"], data, fin=close)

    def resize(self, width: int, height: int) -> None:
        self.client.send(self.streams["resize"],
                         json.dumps({"Width": width, "Height": height}).encode() + b"\n")

    def output(self, name: str = "stdout") -> bytes:
        return bytes(self.client.data.get(self.streams.get(name, -1), b""))

    def wait_output(self, name: str, text: bytes, timeout: float = 20.0) -> None:
        self.client.pump_until(lambda: text in self.output(name), timeout)

    def finish(self, timeout: float = 30.0) -> dict[str, Any] | bytes:
        """Read to the end; the error stream's Status (v4) or text."""
        self.client.pump_until(lambda: self.streams["error"] in self.client.finished, timeout)
        self.client.pump_to_close(timeout)
        raw = self.output("error")
        return json.loads(raw) if raw and self.protocol.startswith("v4") else raw

    def close(self) -> None:
        self.client.close()


def exit_code(status: dict[str, Any] | bytes) -> int:
    assert isinstance(status, dict), status
    if status["status"] == "Success":
        return 0
    assert status["reason"] == "NonZeroExitCode", status
    return int(status["details"]["causes"][0]["message"])
