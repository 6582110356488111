"""ADD, CHECK and DEL of a network list, as libcni runs them: plugins in order for ADD (each
given the previous result), in reverse for DEL (each given the cached result), each told its
list's name and version, and given only the runtimeConfig keys its `capabilities` ask for."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cri.network.cni.config import NetworkConfigList, find_plugin
from cri.network.cni.invoke import PluginError, invoke

DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class RuntimeConf:
    container_id: str
    netns: str
    ifname: str = "eth0"
    args: tuple[tuple[str, str], ...] = ()
    # capability name -> value: portMappings, bandwidth, dns, ipRanges
    capabilities: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cni_args(self) -> str:
        return ";".join(f"{k}={v}" for k, v in self.args)

    def to_json(self) -> dict[str, Any]:
        return {"container_id": self.container_id, "netns": self.netns, "ifname": self.ifname,
                "args": [list(a) for a in self.args], "capabilities": dict(self.capabilities)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RuntimeConf:
        return cls(data["container_id"], data["netns"], data["ifname"],
                   tuple((k, v) for k, v in data["args"]), data["capabilities"])


def plugin_config(plugin: Mapping[str, Any], conflist: NetworkConfigList, rt: RuntimeConf,
                  prev_result: Mapping[str, Any] | None) -> dict[str, Any]:
    """What one plugin reads on stdin (pure)."""
    conf = copy.deepcopy(dict(plugin))
    conf["name"] = conflist.name
    conf["cniVersion"] = conflist.cni_version
    wanted = conf.pop("capabilities", None) or {}
    runtime_config = {cap: rt.capabilities[cap] for cap, on in wanted.items()
                      if on and cap in rt.capabilities}
    if runtime_config:
        conf["runtimeConfig"] = runtime_config
    if prev_result is not None:
        conf["prevResult"] = dict(prev_result)
    return conf


def _run(plugin: Mapping[str, Any], command: str, conf: Mapping[str, Any], rt: RuntimeConf,
         bin_dirs: Sequence[Path], timeout: float) -> dict[str, Any]:
    path = find_plugin(plugin["type"], bin_dirs)
    if path is None:
        raise PluginError(plugin["type"], command,
                          f"not found in {', '.join(str(d) for d in bin_dirs)}")
    return invoke(path, command, conf, container_id=rt.container_id, netns=rt.netns,
                  ifname=rt.ifname, args=rt.cni_args, bin_dirs=bin_dirs, timeout=timeout)


def add(conflist: NetworkConfigList, rt: RuntimeConf, bin_dirs: Sequence[Path],
        timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    result: dict[str, Any] | None = None
    for plugin in conflist.plugins:
        answer = _run(plugin, "ADD", plugin_config(plugin, conflist, rt, result), rt, bin_dirs,
                      timeout)
        result = answer or result  # a plugin may pass the result on unchanged
    return result or {}


def check(conflist: NetworkConfigList, rt: RuntimeConf, result: Mapping[str, Any],
          bin_dirs: Sequence[Path], timeout: float = DEFAULT_TIMEOUT_S) -> None:
    for plugin in conflist.plugins:
        _run(plugin, "CHECK", plugin_config(plugin, conflist, rt, result), rt, bin_dirs, timeout)


def delete(conflist: NetworkConfigList, rt: RuntimeConf, result: Mapping[str, Any] | None,
           bin_dirs: Sequence[Path], timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Stops at the first failure, as libcni does: what the plugins before it hold (the IP
    above all) stays held until a retry succeeds, rather than half of the pod's network going."""
    prev = result if _version_at_least(conflist.cni_version, (0, 4, 0)) else None
    for plugin in reversed(conflist.plugins):
        _run(plugin, "DEL", plugin_config(plugin, conflist, rt, prev), rt, bin_dirs, timeout)


def _version_at_least(version: str, wanted: tuple[int, int, int]) -> bool:
    try:
        parts = tuple(int(p) for p in version.split("."))
    except ValueError:
        return True
    return parts >= wanted
