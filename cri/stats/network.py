"""A pod's network counters, from /proc/<pid>/net/dev of a process in its network namespace.

That file shows the namespace of the process that owns it, so no setns (and no fork) is needed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InterfaceCounters:
    name: str
    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_dropped: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_dropped: int


def parse_net_dev(text: str) -> list[InterfaceCounters]:
    """The kernel's table: two header lines, then `name: 8 receive and 8 transmit columns`."""
    out = []
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        if not sep:
            continue
        fields = rest.split()
        if len(fields) < 16:
            continue
        try:
            n = [int(x) for x in fields[:16]]
        except ValueError:
            continue
        out.append(InterfaceCounters(name.strip(), rx_bytes=n[0], rx_packets=n[1],
                                     rx_errors=n[2], rx_dropped=n[3], tx_bytes=n[8],
                                     tx_packets=n[9], tx_errors=n[10], tx_dropped=n[11]))
    return out


def read_interfaces(pid: int) -> list[InterfaceCounters]:
    """Every interface of pid's network namespace; empty when the process is gone."""
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            return parse_net_dev(f.read())
    except OSError:
        return []


def pod_interfaces(interfaces: list[InterfaceCounters]) -> list[InterfaceCounters]:
    """What leaves the pod: loopback traffic never does, so it is not pod network usage."""
    return [i for i in interfaces if i.name != "lo"]


def default_interface(interfaces: list[InterfaceCounters]) -> InterfaceCounters | None:
    """eth0, the name every CNI plugin gives the pod's interface; else the first one."""
    for i in interfaces:
        if i.name == "eth0":
            return i
    return interfaces[0] if interfaces else None
