"""Pod networking through Debian's CNI plugins (bridge, host-local, portmap, bandwidth,
loopback), with the daemon inside a stand-in node: a network namespace this module makes, so
every bridge, veth and iptables rule lands there and the machine's own network is untouched."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.integration.test_pod_lifecycle import code_of, container_config, pod_config
from tests.support import node as nodes
from tests.support.daemon import CriClient, DaemonProcess, running_daemon
from tests.support.registry import LocalRegistry

PLUGIN_DIR = Path("/usr/lib/cni")
PLUGINS = ("bridge", "host-local", "portmap", "bandwidth", "loopback")
SUBNET = ipaddress.ip_network("10.77.0.0/24")
GATEWAY = "10.77.0.1"
NODE_IP = "10.250.0.1"


def conflist(ipam_dir: Path, *, name: str = "cri-test", subnet: str = str(SUBNET)) -> str:
    return json.dumps({
        "cniVersion": "1.0.0", "name": name,
        "plugins": [
            {"type": "bridge", "bridge": "cri-test0", "isGateway": True, "ipMasq": True,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(ipam_dir)}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "bandwidth", "capabilities": {"bandwidth": True}},
            {"type": "loopback"},
        ]})


class Node:
    def __init__(self, name: str, peer: str, work: Path, daemon: DaemonProcess) -> None:
        self.name, self.peer, self.work, self.daemon = name, peer, work, daemon
        self.conf_dir, self.bin_dir, self.ipam_dir = work / "net.d", work / "bin", work / "ipam"

    def write_config(self) -> None:
        (self.conf_dir / "10-test.conflist").write_text(conflist(self.ipam_dir))

    def allocated(self) -> list[str]:
        """IPs host-local holds (its files are named after them)."""
        found = []
        for path in self.ipam_dir.glob("*/*"):
            try:
                ipaddress.ip_address(path.name)
            except ValueError:
                continue
            found.append(path.name)
        return found

    def iptables(self) -> str:
        return subprocess.run([*nodes.nsenter(self.name), "iptables-save"], check=True,
                              capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def node(pause_binary: Path, registry: LocalRegistry, busybox_ref: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    missing = [p for p in PLUGINS if not (PLUGIN_DIR / p).exists()]
    if missing or shutil.which("nsenter") is None or shutil.which("iptables-save") is None:
        pytest.fail(f"CNI plugins {missing}, nsenter or iptables missing: "
                    "tests/install-and-run.sh installs them")
    work = tmp_path_factory.mktemp("node")
    (work / "net.d").mkdir()
    (work / "bin").mkdir()
    for plugin in PLUGINS:
        (work / "bin" / plugin).symlink_to(PLUGIN_DIR / plugin)
    config = (f'cni_conf_dir = "{work / "net.d"}"\ncni_bin_dir = "{work / "bin"}"\n')
    with nodes.netns("cri-node") as name, nodes.peer_of(name, NODE_IP) as peer:
        relay = nodes.Relay(name, registry.port)
        try:
            with running_daemon(pause_binary, config, network="cni", node=name) as daemon:
                yield Node(name, peer, work, daemon)
        finally:
            relay.close()
        assert node_links(name) == ["lo", "veth-node", "cri-test0"] or \
            node_links(name) == ["lo", "veth-node"], node_links(name)


def node_links(name: str) -> list[str]:
    return nodes.links(name)


@pytest.fixture
def cri(node: Node) -> Iterator[CriClient]:
    client = CriClient(node.daemon.socket, "v1")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def ready(node: Node, cri: CriClient, busybox_ref: str) -> Node:
    if not list(node.conf_dir.iterdir()):
        node.write_config()
    cri.images.PullImage(cri.api.PullImageRequest(image=cri.api.ImageSpec(image=busybox_ref)))
    return node


def network_condition(cri: CriClient) -> Any:
    conditions = cri.runtime.Status(cri.api.StatusRequest()).status.conditions
    return next(c for c in conditions if c.type == "NetworkReady")


def run_pod(cri: CriClient, tmp_path: Path, **fields: Any) -> tuple[str, Any]:
    config = pod_config(cri.api, tmp_path)
    for key, value in fields.items():
        if key == "host_network":
            config.linux.security_context.namespace_options.network = cri.api.NODE
        elif key == "port_mappings":
            config.port_mappings.extend(value)
        elif key == "sysctls":
            config.linux.sysctls.update(value)
        else:
            getattr(config, key).CopyFrom(value)
    sandbox_id = cri.runtime.RunPodSandbox(cri.api.RunPodSandboxRequest(
        config=config)).pod_sandbox_id
    return sandbox_id, config


def run_in(cri: CriClient, pod: tuple[str, Any], image: str, command: list[str],
           name: str = "app") -> str:
    ctr = container_config(cri.api, image, command, name=name)
    container_id = cri.runtime.CreateContainer(cri.api.CreateContainerRequest(
        pod_sandbox_id=pod[0], sandbox_config=pod[1], config=ctr)).container_id
    cri.runtime.StartContainer(cri.api.StartContainerRequest(container_id=container_id))
    return container_id


def sh(cri: CriClient, container_id: str, script: str, timeout: int = 10) -> Any:
    return cri.runtime.ExecSync(cri.api.ExecSyncRequest(container_id=container_id,
                                                        cmd=["sh", "-c", script],
                                                        timeout=timeout))


def remove(cri: CriClient, sandbox_id: str) -> None:
    cri.runtime.StopPodSandbox(cri.api.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))
    cri.runtime.RemovePodSandbox(cri.api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))


def pod_ip(cri: CriClient, sandbox_id: str) -> str:
    return cri.runtime.PodSandboxStatus(cri.api.PodSandboxStatusRequest(
        pod_sandbox_id=sandbox_id)).status.network.ip


WEB = "mkdir -p /www && echo from-$0 > /www/index.html && exec busybox httpd -f -p 8080 -h /www"


def serve(cri: CriClient, pod: tuple[str, Any], image: str, tag: str) -> str:
    container_id = run_in(cri, pod, image, ["sh", "-c", WEB, tag], name="web")
    deadline = time.monotonic() + 10
    while sh(cri, container_id, "wget -qO- http://127.0.0.1:8080/").exit_code != 0:
        assert time.monotonic() < deadline, "httpd did not come up"
        time.sleep(0.1)
    return container_id


# --- tests --------------------------------------------------------------------------------------


def test_network_ready_follows_the_conf_dir_and_plugins(node: Node, cri: CriClient,
                                                        tmp_path: Path) -> None:
    for path in node.conf_dir.iterdir():
        path.unlink()
    condition = network_condition(cri)
    assert (condition.status, condition.reason) == (False, "NetworkPluginNotReady")
    assert str(node.conf_dir) in condition.message
    # a pod that needs the network is refused, and nothing of it stays
    config = pod_config(cri.api, tmp_path)
    assert code_of(lambda: cri.runtime.RunPodSandbox(cri.api.RunPodSandboxRequest(
        config=config))) == grpc.StatusCode.FAILED_PRECONDITION
    assert list(cri.runtime.ListPodSandbox(cri.api.ListPodSandboxRequest()).items) == []
    node.write_config()  # dropped in while the daemon runs
    assert network_condition(cri).status is True
    (node.bin_dir / "portmap").rename(node.bin_dir / "portmap.off")
    try:
        condition = network_condition(cri)
        assert condition.status is False and "portmap" in condition.message
    finally:
        (node.bin_dir / "portmap.off").rename(node.bin_dir / "portmap")
    assert network_condition(cri).status is True


def test_pods_get_ips_and_reach_each_other_and_the_node(ready: Node, cri: CriClient,
                                                        busybox_ref: str, tmp_path: Path) -> None:
    server = run_pod(cri, tmp_path)
    client = run_pod(cri, tmp_path)
    server_ip, client_ip = pod_ip(cri, server[0]), pod_ip(cri, client[0])
    assert ipaddress.ip_address(server_ip) in SUBNET and ipaddress.ip_address(client_ip) in SUBNET
    assert server_ip != client_ip
    serve(cri, server, busybox_ref, "server")
    prober = run_in(cri, client, busybox_ref, ["sleep", "3600"])
    result = sh(cri, prober, f"wget -qO- http://{server_ip}:8080/")
    assert (result.exit_code, result.stdout) == (0, b"from-server\n")
    # the node: a server in its namespace, reached through the bridge's gateway address
    listener = nodes.in_netns(ready.name, lambda: socket.create_server(("0.0.0.0", 0)))
    port = listener.getsockname()[1]

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\nthe-node")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    result = sh(cri, prober, f"wget -qO- http://{GATEWAY}:{port}/")
    listener.close()
    assert (result.exit_code, result.stdout) == (0, b"the-node")
    # the pod's interface is eth0, with its IP
    assert f"inet {client_ip}/24".encode() in sh(cri, prober, "ip addr show eth0 || "
                                                 "cat /proc/net/fib_trie").stdout or \
        client_ip.encode() in sh(cri, prober, "cat /proc/net/fib_trie").stdout
    remove(cri, server[0])
    remove(cri, client[0])


def test_a_host_port_reaches_the_container_from_another_namespace(
        ready: Node, cri: CriClient, busybox_ref: str, tmp_path: Path) -> None:
    mapping = cri.api.PortMapping(protocol=cri.api.TCP, container_port=8080, host_port=18080)
    pod = run_pod(cri, tmp_path, port_mappings=[mapping])
    serve(cri, pod, busybox_ref, "mapped")

    def fetch() -> bytes:
        with socket.create_connection((NODE_IP, 18080), timeout=10) as sock:
            sock.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            return data

    assert nodes.in_netns(ready.peer, fetch).endswith(b"from-mapped\n")
    assert "18080" in ready.iptables()
    remove(cri, pod[0])
    rules = ready.iptables()
    assert "18080" not in rules and pod[0] not in rules


def test_a_host_network_pod_shares_the_nodes_namespace(ready: Node, cri: CriClient,
                                                       busybox_ref: str, tmp_path: Path) -> None:
    before = ready.allocated()
    pod = run_pod(cri, tmp_path, host_network=True)
    assert pod_ip(cri, pod[0]) == ""
    assert ready.allocated() == before  # no CNI for it
    container_id = run_in(cri, pod, busybox_ref, ["sleep", "3600"])
    devices = sh(cri, container_id, "cat /proc/net/dev").stdout.decode()
    assert "veth-node" in devices
    assert sh(cri, container_id, "hostname").stdout.decode().strip() == socket.gethostname()
    remove(cri, pod[0])


def test_dns_config_lands_in_resolv_conf(ready: Node, cri: CriClient, busybox_ref: str,
                                         tmp_path: Path) -> None:
    dns = cri.api.DNSConfig(servers=["10.96.0.10"], searches=["ns.svc.cluster.local"],
                            options=["ndots:5", "timeout:2"])
    pod = run_pod(cri, tmp_path, dns_config=dns)
    container_id = run_in(cri, pod, busybox_ref, ["sleep", "3600"])
    resolv = sh(cri, container_id, "cat /etc/resolv.conf").stdout.decode()
    assert resolv.splitlines() == ["search ns.svc.cluster.local", "nameserver 10.96.0.10",
                                   "options ndots:5 timeout:2"]
    remove(cri, pod[0])


def test_sysctls_are_applied_in_the_pod_and_others_refused(
        ready: Node, cri: CriClient, busybox_ref: str, tmp_path: Path) -> None:
    pod = run_pod(cri, tmp_path, sysctls={"net.ipv4.ip_local_port_range": "20000 30000",
                                           "kernel.shmmni": "1000"})
    container_id = run_in(cri, pod, busybox_ref, ["sleep", "3600"])
    result = sh(cri, container_id, "cat /proc/sys/net/ipv4/ip_local_port_range "
                                   "/proc/sys/kernel/shmmni")
    assert result.stdout.split() == [b"20000", b"30000", b"1000"]
    node_range = nodes.in_netns(ready.name, lambda: Path(
        "/proc/sys/net/ipv4/ip_local_port_range").read_text())
    assert node_range.split() != ["20000", "30000"]
    remove(cri, pod[0])
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    for sysctls, host in (({"vm.swappiness": "10"}, False),
                          ({"net.ipv4.ip_forward": "1"}, True)):
        config = pod_config(cri.api, tmp_path)
        config.linux.sysctls.update(sysctls)
        if host:
            config.linux.security_context.namespace_options.network = cri.api.NODE
        assert code_of(lambda c=config: cri.runtime.RunPodSandbox(
            cri.api.RunPodSandboxRequest(config=c))) == invalid


def test_twenty_pods_leave_no_ip_veth_or_rule(ready: Node, cri: CriClient,
                                              tmp_path: Path) -> None:
    before_links = nodes.links(ready.name)
    pods = [run_pod(cri, tmp_path)[0] for _ in range(20)]
    ips = {pod_ip(cri, p) for p in pods}
    assert len(ips) == 20 and sorted(ready.allocated()) == sorted(ips)
    assert len(nodes.links(ready.name)) == len(set(before_links) | {"cri-test0"}) + 20
    for sandbox_id in pods:
        remove(cri, sandbox_id)
        # idempotent: again and again
        remove(cri, sandbox_id)
    assert ready.allocated() == []
    assert set(nodes.links(ready.name)) <= set(before_links) | {"cri-test0"}
    rules = ready.iptables()
    assert not [p for p in pods if p in rules]


def test_a_daemon_restart_between_run_and_stop_still_releases_the_ip(
        ready: Node, cri: CriClient, tmp_path: Path) -> None:
    sandbox_id, _ = run_pod(cri, tmp_path)
    address = pod_ip(cri, sandbox_id)
    assert ready.allocated() == [address]
    ready.daemon.stop()
    ready.daemon.start()
    fresh = CriClient(ready.daemon.socket, "v1")
    try:
        assert pod_ip(fresh, sandbox_id) == address
        remove(fresh, sandbox_id)
    finally:
        fresh.close()
    assert ready.allocated() == []


def test_a_failed_del_keeps_the_pod_stoppable(ready: Node, cri: CriClient,
                                              tmp_path: Path) -> None:
    sandbox_id, _ = run_pod(cri, tmp_path)
    (ready.bin_dir / "portmap").rename(ready.bin_dir / "portmap.off")
    try:
        assert code_of(lambda: cri.runtime.StopPodSandbox(cri.api.StopPodSandboxRequest(
            pod_sandbox_id=sandbox_id))) == grpc.StatusCode.INTERNAL
        assert code_of(lambda: cri.runtime.RemovePodSandbox(cri.api.RemovePodSandboxRequest(
            pod_sandbox_id=sandbox_id))) == grpc.StatusCode.INTERNAL
        assert len(ready.allocated()) == 1  # the IP is still held, not silently dropped
    finally:
        (ready.bin_dir / "portmap.off").rename(ready.bin_dir / "portmap")
    remove(cri, sandbox_id)
    assert ready.allocated() == []


def test_a_failing_plugin_fails_run_cleanly_with_its_message(ready: Node, cri: CriClient,
                                                             tmp_path: Path) -> None:
    good = ready.conf_dir / "10-test.conflist"
    bad = ready.conf_dir / "05-bad.conflist"  # lexically first: it wins
    bad.write_text(conflist(ready.ipam_dir, name="bad", subnet="10.77.0.0/33"))
    before = nodes.links(ready.name)
    try:
        config = pod_config(cri.api, tmp_path)
        with pytest.raises(grpc.RpcError) as info:
            cri.runtime.RunPodSandbox(cri.api.RunPodSandboxRequest(config=config))
        assert info.value.code() == grpc.StatusCode.INTERNAL
        assert "plugin bridge failed ADD" in info.value.details()
        assert "10.77.0.0/33" in info.value.details()
        assert list(cri.runtime.ListPodSandbox(cri.api.ListPodSandboxRequest()).items) == []
        assert nodes.links(ready.name) == before
        assert list((ready.daemon.state / "netns").glob("*")) == []
    finally:
        bad.unlink()
    assert good.exists() and network_condition(cri).status is True
    assert os.listdir(ready.daemon.state / "netns") == []
