"""Pod networking through CNI: which configuration is in effect, whether the network is ready,
and ADD / DEL for each pod with its cached result, so a DEL after a daemon restart (or a retry
after a failed one) tears down exactly what the ADD made.

Modes: "cni" (the default, every Kubernetes network add-on) and "loopback" (pods get a network
namespace with loopback only; for nodes and tests that want no pod network at all).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cri.api.runtime.v1 import api_pb2 as v1
from cri.network import cni
from cri.network.cni.config import missing_plugins

log = logging.getLogger(__name__)

CACHE_NAME: Final = "network.json"
NOT_READY_REASON: Final = "NetworkPluginNotReady"
_PROTOCOLS: Final = {v1.TCP: "tcp", v1.UDP: "udp", v1.SCTP: "sctp"}


class NetworkNotReady(Exception):
    pass


@dataclass(frozen=True, slots=True)
class NetworkStatus:
    ready: bool
    reason: str = ""
    message: str = ""


class NetworkManager:
    def __init__(self, mode: str, conf_dir: Path, bin_dirs: Sequence[Path],
                 timeout: float = cni.chain.DEFAULT_TIMEOUT_S) -> None:
        if mode not in ("cni", "loopback"):
            raise ValueError(f"network must be 'cni' or 'loopback', not {mode!r}")
        self.mode = mode
        self.conf_dir = conf_dir
        self.bin_dirs = tuple(bin_dirs)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._signature: tuple[Any, ...] | None = None
        self._conflist: cni.NetworkConfigList | None = None
        self._error = ""
        self._pod_cidr = ""

    @property
    def uses_cni(self) -> bool:
        return self.mode == "cni"

    def set_pod_cidr(self, cidr: str) -> None:
        """UpdateRuntimeConfig's pod CIDR, given to plugins that take `ipRanges`."""
        if cidr != self._pod_cidr:
            log.info("pod CIDR is now %r", cidr)
        self._pod_cidr = cidr

    # --- configuration --------------------------------------------------------------------

    def _dir_signature(self) -> tuple[Any, ...]:
        try:
            entries = sorted(os.scandir(self.conf_dir), key=lambda e: e.name)
        except OSError:
            return ()
        out = []
        for entry in entries:
            try:
                st = entry.stat()
            except OSError:
                continue
            out.append((entry.name, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def current(self) -> cni.NetworkConfigList:
        """The config in effect, reloaded whenever the conf dir changed (a config dropped in
        later is picked up); NetworkNotReady says what is missing."""
        with self._lock:
            signature = self._dir_signature()
            if signature != self._signature:
                self._signature = signature
                try:
                    self._conflist = cni.load_conf_dir(self.conf_dir)
                    self._error = ""
                    log.info("network config %s (%s)", self._conflist.source,
                             self._conflist.name)
                except cni.ConfigError as exc:
                    self._conflist, self._error = None, str(exc)
                    log.warning("network not ready: %s", exc)
            if self._conflist is None:
                raise NetworkNotReady(self._error)
            missing = missing_plugins(self._conflist, self.bin_dirs)
            if missing:
                raise NetworkNotReady(
                    f"network config {self._conflist.source} needs plugins "
                    f"{', '.join(missing)}, not found in "
                    f"{', '.join(str(d) for d in self.bin_dirs)}")
            return self._conflist

    def status(self) -> NetworkStatus:
        if not self.uses_cni:
            return NetworkStatus(ready=True)
        try:
            self.current()
        except NetworkNotReady as exc:
            return NetworkStatus(False, NOT_READY_REASON, f"cni: {exc}")
        return NetworkStatus(ready=True)

    # --- pods -----------------------------------------------------------------------------

    def setup(self, sandbox_id: str, netns: str, config: v1.PodSandboxConfig,
              state_dir: Path) -> tuple[str, ...]:
        """ADD; the pod's IPs. On failure whatever the ADD made is deleted again."""
        conflist = self.current()
        rt = cni.RuntimeConf(container_id=sandbox_id, netns=netns, args=pod_args(sandbox_id,
                             config), capabilities=capabilities(config, self._pod_cidr))
        cache = state_dir / CACHE_NAME
        # Written before ADD: a daemon that dies during it can still DEL on the next stop.
        _write_cache(cache, conflist, rt, None)
        try:
            result = cni.add(conflist, rt, self.bin_dirs, self.timeout)
        except cni.PluginError:
            try:
                cni.delete(conflist, rt, None, self.bin_dirs, self.timeout)
                cache.unlink(missing_ok=True)
            except cni.PluginError as exc:
                log.error("sandbox %s: DEL after a failed ADD failed too: %s", sandbox_id, exc)
            raise
        _write_cache(cache, conflist, rt, result)
        ips = cni.pod_ips(result)
        log.info("sandbox %s: network %s gave %s", sandbox_id, conflist.name,
                 ", ".join(ips) or "no IP")
        return ips

    def teardown(self, sandbox_id: str, state_dir: Path) -> None:
        """DEL with what ADD was given and answered; idempotent. A failure keeps the cache, so
        the next StopPodSandbox tries again rather than dropping the IP."""
        cache = state_dir / CACHE_NAME
        try:
            data = json.loads(cache.read_text())
        except FileNotFoundError:
            return
        except ValueError:
            log.error("sandbox %s: unreadable network cache %s; nothing to delete", sandbox_id,
                      cache)
            cache.unlink()
            return
        conflist = cni.NetworkConfigList.from_json(data["config"])
        rt = cni.RuntimeConf.from_json(data["runtime_conf"])
        cni.delete(conflist, rt, data.get("result"), self.bin_dirs, self.timeout)
        cache.unlink(missing_ok=True)
        log.info("sandbox %s: network %s deleted", sandbox_id, conflist.name)


def _write_cache(path: Path, conflist: cni.NetworkConfigList, rt: cni.RuntimeConf,
                 result: dict[str, Any] | None) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"config": conflist.to_json(), "runtime_conf": rt.to_json(),
                               "result": result}))
    os.replace(tmp, path)


def pod_args(sandbox_id: str, config: v1.PodSandboxConfig) -> tuple[tuple[str, str], ...]:
    md = config.metadata
    return (("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", md.namespace),
            ("K8S_POD_NAME", md.name), ("K8S_POD_INFRA_CONTAINER_ID", sandbox_id),
            ("K8S_POD_UID", md.uid))


def capabilities(config: v1.PodSandboxConfig, pod_cidr: str) -> dict[str, Any]:
    """The runtimeConfig values a plugin may ask for (pure)."""
    caps: dict[str, Any] = {}
    mappings = [
        {"hostPort": p.host_port, "containerPort": p.container_port,
         "protocol": _PROTOCOLS.get(p.protocol, "tcp"), "hostIP": p.host_ip}
        for p in config.port_mappings if p.host_port > 0
    ]
    if mappings:
        caps["portMappings"] = mappings
    dns = config.dns_config
    if dns.servers or dns.searches or dns.options:
        caps["dns"] = {"servers": list(dns.servers), "searches": list(dns.searches),
                       "options": list(dns.options)}
    bandwidth: dict[str, int] = {}
    for key, prefix in (("kubernetes.io/ingress-bandwidth", "ingress"),
                        ("kubernetes.io/egress-bandwidth", "egress")):
        value = config.annotations.get(key)
        if value:
            # kubelet's rule: the rate in bits per second, the burst unlimited.
            bandwidth[f"{prefix}Rate"] = parse_quantity(value)
            bandwidth[f"{prefix}Burst"] = 2**31 - 1
    if bandwidth:
        caps["bandwidth"] = bandwidth
    if pod_cidr:
        caps["ipRanges"] = [[{"subnet": pod_cidr}]]
    return caps


_SUFFIXES: Final = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
                    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}


def parse_quantity(text: str) -> int:
    """A Kubernetes quantity such as "10M" or "1Gi", as an integer."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kMGTP]i?|)\s*", text)
    if match is None or match.group(2) not in _SUFFIXES:
        raise ValueError(f"{text!r} is not a quantity")
    return int(float(match.group(1)) * _SUFFIXES[match.group(2)])
