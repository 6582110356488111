"""Network configuration files, as libcni reads them: the lexically first valid `.conflist`,
`.conf` or `.json` in the conf dir wins; a `.conf` is a list of one plugin."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXTENSIONS = (".conflist", ".conf", ".json")


class ConfigError(Exception):
    """No usable network configuration; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class NetworkConfigList:
    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    source: str  # the file it came from, for messages

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "cniVersion": self.cni_version,
                "plugins": list(self.plugins), "source": self.source}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetworkConfigList:
        return cls(data["name"], data["cniVersion"], tuple(data["plugins"]),
                   data.get("source", ""))


def parse(text: str, source: str) -> NetworkConfigList:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: not a JSON object")
    if "plugins" in data:
        plugins = data["plugins"]
        if not isinstance(plugins, list) or not plugins:
            raise ConfigError(f"{source}: 'plugins' must be a non-empty list")
    elif source.endswith(".conflist"):
        raise ConfigError(f"{source}: a .conflist needs 'plugins'")
    else:
        plugins = [{k: v for k, v in data.items() if k not in ("name", "cniVersion")}]
    name, version = data.get("name"), data.get("cniVersion", "0.2.0")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: no network 'name'")
    if not isinstance(version, str):
        raise ConfigError(f"{source}: 'cniVersion' must be a string")
    for plugin in plugins:
        if not isinstance(plugin, dict) or not isinstance(plugin.get("type"), str) \
                or not plugin["type"] or "/" in plugin["type"]:
            raise ConfigError(f"{source}: every plugin needs a 'type'")
    return NetworkConfigList(name, version, tuple(plugins), source)


def load_conf_dir(conf_dir: Path) -> NetworkConfigList:
    """The configuration in effect: the first file, in name order, that parses."""
    try:
        names = sorted(n for n in os.listdir(conf_dir) if n.endswith(EXTENSIONS))
    except OSError as exc:
        raise ConfigError(f"no network config: cannot read {conf_dir}: {exc.strerror}") from None
    problems = []
    for name in names:
        path = conf_dir / name
        try:
            return parse(path.read_text(), str(path))
        except (ConfigError, OSError) as exc:
            problems.append(str(exc))
    detail = f" ({'; '.join(problems)})" if problems else ""
    raise ConfigError(f"no valid network config found in {conf_dir}{detail}")


def find_plugin(plugin_type: str, bin_dirs: Sequence[Path]) -> Path | None:
    for directory in bin_dirs:
        candidate = directory / plugin_type
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def missing_plugins(conflist: NetworkConfigList, bin_dirs: Sequence[Path]) -> list[str]:
    return [p["type"] for p in conflist.plugins if find_plugin(p["type"], bin_dirs) is None]
