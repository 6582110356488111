"""CNI results, pure: the pod's addresses out of a 1.0.0, 0.4.0 or 0.3.1 result (the same
`ips` list; 0.3.x and 0.4.0 add a `version` field that 1.0.0 dropped)."""

from __future__ import annotations

import ipaddress
from typing import Any


def pod_ips(result: dict[str, Any]) -> tuple[str, ...]:
    """Addresses without their prefix length, IPv4 first (kubelet takes the first as the pod's
    primary IP), then IPv6; addresses on interfaces outside the pod's namespace (those with a
    `sandbox` field that is empty, such as the bridge) are left out."""
    interfaces = result.get("interfaces") or []
    v4: list[str] = []
    v6: list[str] = []
    for entry in result.get("ips") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("address"), str):
            continue
        index = entry.get("interface")
        if isinstance(index, int) and 0 <= index < len(interfaces):
            iface = interfaces[index]
            if isinstance(iface, dict) and not iface.get("sandbox"):
                continue
        try:
            address = ipaddress.ip_interface(entry["address"]).ip
        except ValueError:
            continue
        (v4 if address.version == 4 else v6).append(str(address))
    return tuple(v4 + v6)
