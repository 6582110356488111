"""A stand-in node: a network namespace the tests make, in which the daemon (and the CNI plugins
it runs) put their bridges, veths and iptables rules, so the machine's own network is never
touched. Also: a peer namespace wired to the node by a veth (another host on the node's
network), and a relay that makes a TCP port on the machine's loopback (the test registry)
reachable on the node's loopback."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from cri.oci import syscalls as sc
from cri.oci.syscalls import RealSyscalls

T = TypeVar("T")
NETNS_DIR = Path("/run/netns")


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def in_netns(name: str, fn: Callable[[], T]) -> T:
    """fn() on a fresh thread that entered namespace `name` (what it makes, sockets above all,
    stays in that namespace); the thread then ends."""
    out: list[T] = []
    err: list[BaseException] = []

    def run() -> None:
        fd = os.open(NETNS_DIR / name, os.O_RDONLY)
        try:
            RealSyscalls().setns(fd, sc.CLONE_NEWNET)
            out.append(fn())
        except BaseException as exc:
            err.append(exc)
        finally:
            os.close(fd)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if err:
        raise err[0]
    return out[0]


@contextlib.contextmanager
def netns(prefix: str) -> Iterator[str]:
    name = f"{prefix}-{secrets.token_hex(3)}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        ip("netns", "delete", name)


def nsenter(name: str) -> list[str]:
    """A command prefix that runs a program in namespace `name` (and nothing else changed:
    unlike `ip netns exec`, no new mount namespace)."""
    return ["nsenter", f"--net={NETNS_DIR / name}", "--"]


def links(name: str) -> list[str]:
    return [line.split(":")[1].strip().split("@")[0]
            for line in ip("-n", name, "-o", "link").splitlines()]


class Relay:
    """Listens on 127.0.0.1:`port` inside namespace `name`, and joins each connection to
    127.0.0.1:`port` of the machine."""

    def __init__(self, name: str, port: int) -> None:
        self.port = port

        def listen() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(64)
            return sock

        self.listener = in_netns(name, listen)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                inner, _ = self.listener.accept()
            except OSError:
                return
            try:
                outer = socket.create_connection(("127.0.0.1", self.port))
            except OSError:
                inner.close()
                continue
            for a, b in ((inner, outer), (outer, inner)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def peer_of(node: str, node_ip: str = "10.250.0.1", peer_ip: str = "10.250.0.2"
            ) -> Iterator[str]:
    """Another namespace on the node's network: a veth with `node_ip` on the node's end."""
    with netns("cri-peer") as peer:
        ip("link", "add", "veth-node", "netns", node, "type", "veth", "peer", "name", "veth-peer",
           "netns", peer)
        ip("-n", node, "addr", "add", f"{node_ip}/24", "dev", "veth-node")
        ip("-n", node, "link", "set", "veth-node", "up")
        ip("-n", peer, "addr", "add", f"{peer_ip}/24", "dev", "veth-peer")
        ip("-n", peer, "link", "set", "veth-peer", "up")
        yield peer
