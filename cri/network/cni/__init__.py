"""CNI (spec 1.0.0; plugins answering in the 0.4.0 and 0.3.1 result formats too): configuration
loading, result parsing (pure), plugin execution and the ADD / CHECK / DEL chain of a list."""

from cri.network.cni.chain import RuntimeConf, add, check, delete
from cri.network.cni.config import ConfigError, NetworkConfigList, find_plugin, load_conf_dir
from cri.network.cni.invoke import PluginError
from cri.network.cni.result import pod_ips

__all__ = ["ConfigError", "NetworkConfigList", "PluginError", "RuntimeConf", "add", "check",
           "delete", "find_plugin", "load_conf_dir", "pod_ips"]
