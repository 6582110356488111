"""Daemon configuration: built-in defaults, overridden by a TOML file, overridden by flags.

Every flag has a TOML key of the same name (dashes become underscores), so an operator can keep the
whole configuration in one file. Unknown keys are an error: a typo should not silently do nothing.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

BUILTIN_PAUSE_IMAGE = "localhost/cri/pause:builtin"


@dataclass(frozen=True, slots=True)
class RuntimeHandler:
    """A named OCI runtime. An empty binary means the in-tree executor (`cri.oci`)."""

    name: str
    binary: str = ""


@dataclass(frozen=True, slots=True)
class Config:
    listen: str = "unix:///run/cri/cri.sock"
    root: Path = Path("/var/lib/cri")
    state: Path = Path("/run/cri")
    log_level: str = "info"
    # The pause image every pod sandbox runs. The built-in one is made from the pause binary
    # compiled at install time, so pods start on an air-gapped node with no pull.
    sandbox_image: str = BUILTIN_PAUSE_IMAGE
    pause_binary: Path | None = None
    # cgroupfs parent for pods whose config names none (crictl's pods; kubelet always sets one).
    cgroup_parent: str = "/cri"
    # Registry host -> endpoints tried in order before the host itself (e.g. a local mirror).
    registry_mirrors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    runtimes: Mapping[str, RuntimeHandler] = field(default_factory=dict)
    default_runtime: str = ""
    # Pod networking: "cni" (plugins from cni_bin_dir, the first config in cni_conf_dir) or
    # "loopback" (each pod gets a namespace with loopback only).
    network: str = "cni"
    cni_conf_dir: Path = Path("/etc/cni/net.d")
    cni_bin_dir: str = "/opt/cni/bin:/usr/lib/cni"  # searched in order, as CNI_PATH
    cni_timeout: float = 60.0
    stream_address: str = "127.0.0.1"
    stream_port: int = 0  # 0: a free port, chosen at start
    # A streaming session with no traffic either way for this long is closed (cri-streaming's
    # default); a client gets this long to open its streams after the upgrade.
    stream_idle_timeout: float = 4 * 3600.0
    stream_creation_timeout: float = 30.0
    # Shims are forked from one pre-loaded process (cri/shim/forkserver.py), so a container's
    # start pays no interpreter start-up; it holds about 18 MiB. false: every shim starts cold.
    shim_fork_server: bool = True
    # CreateContainer begins the container's task (its shim, and the OCI create) on a thread of
    # its own and returns; StartContainer waits for it, then starts it (see container/start.py).
    create_tasks_early: bool = True

    @property
    def socket_path(self) -> Path:
        if not self.listen.startswith("unix://"):
            raise ValueError(f"--listen must be unix:///path, got {self.listen!r}")
        return Path(self.listen[len("unix://") :])

    def handler(self, name: str) -> RuntimeHandler:
        """The runtime handler for a RuntimeClass name; "" means the default one."""
        if name == "":
            name = self.default_runtime
        if name == "":
            return RuntimeHandler(name="")
        try:
            return self.runtimes[name]
        except KeyError:
            raise KeyError(name) from None


_PATH_KEYS = {"root", "state", "pause_binary", "cni_conf_dir"}
_SCALAR_KEYS = {f.name for f in fields(Config)} - {"registry_mirrors", "runtimes"}


def _from_mapping(base: Config, data: Mapping[str, Any], source: str) -> Config:
    changes: dict[str, Any] = {}
    for key, value in data.items():
        key = key.replace("-", "_")
        if key in _PATH_KEYS:
            changes[key] = Path(value)
        elif key in _SCALAR_KEYS:
            changes[key] = value
        elif key == "registry":
            mirrors = value.get("mirrors", {})
            changes["registry_mirrors"] = {
                host: tuple(entry.get("endpoints", ())) for host, entry in mirrors.items()
            }
        elif key == "runtimes":
            changes["runtimes"] = {
                name: RuntimeHandler(name=name, binary=entry.get("binary", ""))
                for name, entry in value.items()
            }
        else:
            raise ValueError(f"{source}: unknown configuration key {key!r}")
    return replace(base, **changes)


def load(path: Path | None, overrides: Mapping[str, Any] = {}) -> Config:
    config = Config()
    if path is not None:
        with path.open("rb") as f:
            config = _from_mapping(config, tomllib.load(f), str(path))
    return _from_mapping(config, overrides, "command line")


def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(prog="cri", description="Kubernetes CRI runtime daemon")
    parser.add_argument("--config", type=Path, help="TOML file; flags override it")
    parser.add_argument("--listen", help="gRPC endpoint, unix:///path (default /run/cri/cri.sock)")
    parser.add_argument("--root", help="persistent state (default /var/lib/cri)")
    parser.add_argument("--state", help="runtime state (default /run/cri)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--sandbox-image", help="pause image for pod sandboxes")
    parser.add_argument("--pause-binary", help="static pause binary for the built-in image")
    parser.add_argument("--cgroup-parent", help="cgroup parent for pods that name none")
    parser.add_argument("--network", choices=["cni", "loopback"],
                        help="pod networking (default cni)")
    parser.add_argument("--cni-conf-dir", help="CNI configs (default /etc/cni/net.d)")
    parser.add_argument("--cni-bin-dir",
                        help="CNI plugin dirs, colon-separated (default /opt/cni/bin:/usr/lib/cni)")
    parser.add_argument("--stream-address",
                        help="address of the exec/attach/port-forward server (default 127.0.0.1)")
    parser.add_argument("--stream-port", type=int,
                        help="its port (default 0: a free one, chosen at start)")
    parser.add_argument("--shim-fork-server", action=argparse.BooleanOptionalAction,
                        default=None, help="fork shims from a pre-loaded process (default on)")
    args = parser.parse_args(argv)
    overrides = {
        key: value
        for key, value in vars(args).items()
        if key != "config" and value is not None
    }
    return load(args.config, overrides)
