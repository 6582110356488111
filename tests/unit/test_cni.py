"""CNI's pure parts: which config is in effect, what each plugin is given, what a result says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cri.api.runtime.v1 import api_pb2 as v1
from cri.errors import InvalidArgument
from cri.network.cni import ConfigError, RuntimeConf, load_conf_dir, pod_ips
from cri.network.cni.chain import plugin_config
from cri.network.cni.config import missing_plugins, parse
from cri.network.manager import capabilities, parse_quantity, pod_args
from cri.sandbox.run import check_sysctl

BRIDGE = {"type": "bridge", "ipam": {"type": "host-local"}}


def test_the_lexically_first_valid_file_wins(tmp_path: Path) -> None:
    (tmp_path / "00-broken.conflist").write_text("{nope")
    (tmp_path / "05-notes.txt").write_text("{}")
    (tmp_path / "10-a.conf").write_text(json.dumps({"cniVersion": "0.4.0", "name": "a",
                                                    **BRIDGE}))
    (tmp_path / "20-b.conflist").write_text(json.dumps({"cniVersion": "1.0.0", "name": "b",
                                                        "plugins": [BRIDGE]}))
    loaded = load_conf_dir(tmp_path)
    assert (loaded.name, loaded.cni_version) == ("a", "0.4.0")
    assert loaded.plugins == ({"type": "bridge", "ipam": {"type": "host-local"}},)


def test_no_config_says_where_and_why(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no valid network config found in"):
        load_conf_dir(tmp_path)
    (tmp_path / "1.conflist").write_text(json.dumps({"name": "x", "plugins": []}))
    with pytest.raises(ConfigError, match="non-empty"):
        load_conf_dir(tmp_path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_conf_dir(tmp_path / "absent")


@pytest.mark.parametrize("text", [
    '{"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}',
    '{"name": "n", "plugins": [{"ipam": {}}]}',
    '{"name": "n", "plugins": [{"type": "../../bin/sh"}]}',
])
def test_invalid_configs(text: str) -> None:
    with pytest.raises(ConfigError):
        parse(text, "x.conflist")


def test_missing_plugins(tmp_path: Path) -> None:
    (tmp_path / "bridge").write_text("#!/bin/sh\n")
    (tmp_path / "bridge").chmod(0o755)
    conf = parse(json.dumps({"name": "n", "plugins": [BRIDGE, {"type": "portmap"}]}), "x")
    assert missing_plugins(conf, [tmp_path]) == ["portmap"]


def test_each_plugin_gets_only_the_capabilities_it_asks_for() -> None:
    conf = parse(json.dumps({"name": "n", "cniVersion": "1.0.0", "plugins": [
        BRIDGE, {"type": "portmap", "capabilities": {"portMappings": True, "bandwidth": False}},
    ]}), "x")
    rt = RuntimeConf("id", "/run/netns/x", capabilities={
        "portMappings": [{"hostPort": 80}], "bandwidth": {"ingressRate": 1}})
    first = plugin_config(conf.plugins[0], conf, rt, None)
    assert first == {"type": "bridge", "ipam": {"type": "host-local"}, "name": "n",
                     "cniVersion": "1.0.0"}
    prev = {"ips": [{"address": "10.0.0.2/24"}]}
    second = plugin_config(conf.plugins[1], conf, rt, prev)
    assert second["runtimeConfig"] == {"portMappings": [{"hostPort": 80}]}
    assert second["prevResult"] == prev and "capabilities" not in second
    assert "capabilities" in conf.plugins[1]  # the loaded config is not changed


@pytest.mark.parametrize("result", [
    # 1.0.0
    {"cniVersion": "1.0.0",
     "interfaces": [{"name": "cni0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/ns"}],
     "ips": [{"address": "fd00::5/64", "interface": 2}, {"address": "10.88.0.5/16",
                                                           "interface": 2},
             {"address": "10.88.0.1/16", "interface": 0}]},
    # 0.4.0 and 0.3.1 carry a version per address
    {"cniVersion": "0.4.0", "interfaces": [{"name": "eth0", "sandbox": "/ns"}],
     "ips": [{"version": "6", "address": "fd00::5/64", "interface": 0},
             {"version": "4", "address": "10.88.0.5/16", "interface": 0}]},
    {"cniVersion": "0.3.1",
     "ips": [{"version": "4", "address": "10.88.0.5/16"},
             {"version": "6", "address": "fd00::5/64"}]},
])
def test_pod_ips_ipv4_first(result: dict[str, object]) -> None:
    assert pod_ips(result) == ("10.88.0.5", "fd00::5")


def test_runtime_config_from_the_pod() -> None:
    config = v1.PodSandboxConfig(
        metadata=v1.PodSandboxMetadata(name="web", namespace="prod", uid="u1"),
        port_mappings=[v1.PortMapping(protocol=v1.UDP, container_port=53, host_port=5353,
                                      host_ip="10.0.0.1"),
                       v1.PortMapping(container_port=80)],  # no host port: not mapped
        dns_config=v1.DNSConfig(servers=["1.1.1.1"], options=["ndots:2"]),
        annotations={"kubernetes.io/ingress-bandwidth": "10M"},
    )
    caps = capabilities(config, "10.244.1.0/24")
    assert caps["portMappings"] == [{"hostPort": 5353, "containerPort": 53, "protocol": "udp",
                                     "hostIP": "10.0.0.1"}]
    assert caps["dns"] == {"servers": ["1.1.1.1"], "searches": [], "options": ["ndots:2"]}
    assert caps["bandwidth"] == {"ingressRate": 10_000_000, "ingressBurst": 2**31 - 1}
    assert caps["ipRanges"] == [[{"subnet": "10.244.1.0/24"}]]
    assert RuntimeConf("abc", "", args=pod_args("abc", config)).cni_args == (
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web;"
        "K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u1")


def test_quantities() -> None:
    assert parse_quantity("1Mi") == 1 << 20
    assert parse_quantity("1.5k") == 1500
    with pytest.raises(ValueError):
        parse_quantity("fast")


def test_only_namespaced_sysctls() -> None:
    check_sysctl("net.core.somaxconn", host_network=False, host_ipc=False)
    check_sysctl("net/ipv4/ip_forward", host_network=False, host_ipc=False)
    check_sysctl("kernel.shmmax", host_network=True, host_ipc=False)
    check_sysctl("fs.mqueue.msg_max", host_network=False, host_ipc=False)
    for key, host_network, host_ipc in (("vm.swappiness", False, False),
                                        ("kernel.pid_max", False, False),
                                        ("net.ipv4.ip_forward", True, False),
                                        ("kernel.msgmax", False, True)):
        with pytest.raises(InvalidArgument):
            check_sysctl(key, host_network=host_network, host_ipc=host_ipc)
