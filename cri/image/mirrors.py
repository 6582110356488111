"""The `registry_mirrors` setting, checked once at start-up so that a typo fails loudly rather
than at each pull; and which registry hosts are spoken to over plain HTTP (loopback ones).

Apart from the registry client (registry.py) so that the daemon, which checks the setting but
pulls nothing itself (the pull helper does, see puller.py), never imports requests.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from cri.errors import InvalidArgument
from cri.image.reference import DEFAULT_DOMAIN

_HOST_ALIASES = {"index.docker.io": DEFAULT_DOMAIN, "registry-1.docker.io": DEFAULT_DOMAIN}


def is_loopback_host(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1, with or without a port."""
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_mirrors(mirrors: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Check the mirror map once, at start-up, so a typo fails loudly rather than per pull."""
    out: dict[str, tuple[str, ...]] = {}
    for host, urls in mirrors.items():
        if isinstance(urls, str):
            raise InvalidArgument(f"mirrors for {host!r} must be a list of URLs, not a string")
        key = _HOST_ALIASES.get(host, host)
        out[key] = out.get(key, ()) + tuple(_endpoint_url(u) for u in urls)
    return out


def _endpoint_url(url: str) -> str:
    if "://" not in url:
        url = ("http://" if is_loopback_host(url.split("/", 1)[0]) else "https://") + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgument(f"invalid registry endpoint URL {url!r}")
    url = url.rstrip("/")
    return url.removesuffix("/v2")
