"""Stats, metrics and the Stream* twins through the real daemon, against ground truth: memory a
container really holds, CPU it really burns, bytes it really writes or receives."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.integration.test_pod_lifecycle import (
    code_of,
    container_config,
    pod_config,
    run_container,
)
from tests.support.daemon import CriClient, DaemonProcess

MiB = 1024 * 1024


@pytest.fixture
def cri(cri_v1: CriClient) -> CriClient:
    # Ground truth needs one API version; the alpha surface shares the implementation (its
    # smoke test is below).
    return cri_v1


@pytest.fixture
def pod(cri: CriClient, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    config = pod_config(cri.api, tmp_path)
    sandbox_id = cri.runtime.RunPodSandbox(
        cri.api.RunPodSandboxRequest(config=config)).pod_sandbox_id
    yield sandbox_id, config
    cri.runtime.StopPodSandbox(cri.api.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))
    cri.runtime.RemovePodSandbox(cri.api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))


def start(cri: CriClient, pod: Any, image: str, script: str, name: str = "app",
          labels: dict[str, str] | None = None) -> str:
    config = container_config(cri.api, image, ["sh", "-c", script], name=name)
    for key, value in (labels or {}).items():
        config.labels[key] = value
    return run_container(cri, pod, config)


def wait_file(cri: CriClient, container_id: str, path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = cri.runtime.ExecSync(cri.api.ExecSyncRequest(
            container_id=container_id, cmd=["test", "-e", path], timeout=10))
        if result.exit_code == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} never appeared in {container_id}")


def container_stats(cri: CriClient, container_id: str) -> Any:
    return cri.runtime.ContainerStats(
        cri.api.ContainerStatsRequest(container_id=container_id)).stats


@pytest.fixture
def memory_volume(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs on the node, as kubelet makes for an emptyDir with medium Memory."""
    path = tmp_path / "memory-volume"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_working_set_of_100_mib(cri: CriClient, pod: Any, image: str,
                                memory_volume: Path) -> None:
    # tmpfs pages are charged to the cgroup of the process that touched them and are never
    # inactive file pages: 100 MiB of working set for as long as the file stays.
    config = container_config(cri.api, image, ["sh", "-c",
        "dd if=/dev/zero of=/mem/fill bs=1M count=100 && touch /filled; exec sleep 3600"])
    config.mounts.add(container_path="/mem", host_path=str(memory_volume))
    cid = run_container(cri, pod, config)
    wait_file(cri, cid, "/filled")
    memory = container_stats(cri, cid).memory
    assert memory.timestamp > 0
    ws = memory.working_set_bytes.value
    assert 0.9 * 100 * MiB <= ws <= 1.1 * 100 * MiB, ws / MiB
    assert memory.usage_bytes.value >= ws
    assert memory.page_faults.value > 0
    assert not memory.HasField("available_bytes")  # no limit
    cri.runtime.StopContainer(cri.api.StopContainerRequest(container_id=cid, timeout=0))


def test_available_bytes_under_a_limit(cri: CriClient, pod: Any, image: str) -> None:
    config = container_config(cri.api, image, ["sleep", "3600"], name="limited")
    config.linux.resources.memory_limit_in_bytes = 64 * MiB
    cid = run_container(cri, pod, config)
    memory = container_stats(cri, cid).memory
    assert memory.available_bytes.value == 64 * MiB - memory.working_set_bytes.value


def test_busy_loop_uses_one_core(cri: CriClient, pod: Any, image: str) -> None:
    cid = start(cri, pod, image, "while :; do :; done")
    first = container_stats(cri, cid).cpu
    assert not first.HasField("usage_nano_cores")  # no previous sample yet
    time.sleep(2)
    second = container_stats(cri, cid).cpu
    assert second.usage_core_nano_seconds.value > first.usage_core_nano_seconds.value
    cores = second.usage_nano_cores.value / 1e9
    assert 0.8 <= cores <= 1.1, cores


def test_writable_layer_shows_a_50_mib_file(cri: CriClient, pod: Any, image: str) -> None:
    cid = start(cri, pod, image,
                "dd if=/dev/zero of=/big bs=1M count=50 && sync && touch /written; "
                "exec sleep 3600")
    wait_file(cri, cid, "/written")
    layer = container_stats(cri, cid).writable_layer
    assert layer.used_bytes.value >= 50 * MiB
    assert layer.used_bytes.value < 60 * MiB
    assert layer.inodes_used.value >= 2
    assert layer.fs_id.mountpoint.startswith("/")


def test_process_count_and_pod_stats(cri: CriClient, pod: Any, image: str) -> None:
    sandbox_id, _ = pod
    cid = start(cri, pod, image, "sleep 3600 & sleep 3600 & wait")
    time.sleep(0.3)
    stats = cri.runtime.PodSandboxStats(
        cri.api.PodSandboxStatsRequest(pod_sandbox_id=sandbox_id)).stats
    assert stats.attributes.id == sandbox_id
    assert [c.attributes.id for c in stats.linux.containers] == [cid]
    # pause, sh and two sleeps
    assert stats.linux.process.process_count.value == 4
    assert stats.linux.cpu.usage_core_nano_seconds.value > 0
    assert stats.linux.memory.working_set_bytes.value > 0
    listed = cri.runtime.ListPodSandboxStats(cri.api.ListPodSandboxStatsRequest(
        filter=cri.api.PodSandboxStatsFilter(id=sandbox_id))).stats
    assert [s.attributes.id for s in listed] == [sandbox_id]


def test_list_filters(cri: CriClient, pod: Any, image: str) -> None:
    api = cri.api
    sandbox_id, _ = pod
    a = start(cri, pod, image, "exec sleep 3600", name="a", labels={"tier": "a"})
    b = start(cri, pod, image, "exec sleep 3600", name="b", labels={"tier": "b"})
    created = run_ids = None
    created = cri.runtime.CreateContainer(api.CreateContainerRequest(
        pod_sandbox_id=sandbox_id, sandbox_config=pod[1],
        config=container_config(api, image, ["true"], name="never-started"))).container_id

    def ids(**kwargs: Any) -> set[str]:
        return {s.attributes.id for s in cri.runtime.ListContainerStats(
            api.ListContainerStatsRequest(filter=api.ContainerStatsFilter(**kwargs))).stats}

    run_ids = ids(pod_sandbox_id=sandbox_id)
    assert run_ids == {a, b}  # a container that never ran has no usage to report
    assert ids(id=a) == {a}
    assert ids(id=a[:12]) == {a}
    assert ids(label_selector={"tier": "b"}) == {b}
    assert ids(label_selector={"tier": "c"}) == set()
    assert ids(pod_sandbox_id="f" * 64) == set()
    # The created container still answers ContainerStats: attributes, no usage.
    stats = container_stats(cri, created)
    assert stats.attributes.id == created and not stats.HasField("cpu")


def test_unknown_ids_are_not_found(cri: CriClient) -> None:
    api = cri.api
    assert code_of(lambda: cri.runtime.ContainerStats(
        api.ContainerStatsRequest(container_id="f" * 64))) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: cri.runtime.PodSandboxStats(
        api.PodSandboxStatsRequest(pod_sandbox_id="f" * 64))) == grpc.StatusCode.NOT_FOUND


def test_alpha_api_reads_the_same_stats(daemon: DaemonProcess, cri: CriClient, pod: Any,
                                        image: str) -> None:
    cid = start(cri, pod, image, "exec sleep 3600")
    alpha = CriClient(daemon.socket, "v1alpha2")
    try:
        stats = alpha.runtime.ContainerStats(
            alpha.api.ContainerStatsRequest(container_id=cid)).stats
        assert stats.attributes.id == cid and stats.memory.working_set_bytes.value > 0
    finally:
        alpha.close()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def node_netns() -> Iterator[str]:
    """A network namespace of the test's own, standing in for the node side of a pod's veth."""
    name = f"cri-test-node-{secrets.token_hex(3)}"
    _ip("netns", "add", name)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_pod_network_usage(cri: CriClient, pod: Any, image: str, node_netns: str) -> None:
    sandbox_id, _ = pod
    info = json.loads(cri.runtime.PodSandboxStatus(cri.api.PodSandboxStatusRequest(
        pod_sandbox_id=sandbox_id, verbose=True)).info["info"])
    pause_pid = str(info["pid"])
    # A veth from the test's namespace into the pod's: the machine's own network is untouched.
    _ip("-n", node_netns, "link", "add", "to-pod", "type", "veth", "peer", "name", "eth0",
        "netns", pause_pid)
    _ip("-n", node_netns, "addr", "add", "192.0.2.1/24", "dev", "to-pod")
    _ip("-n", node_netns, "link", "set", "to-pod", "up")
    subprocess.run(["nsenter", "-t", pause_pid, "-n", "sh", "-c",
                    "ip addr add 192.0.2.2/24 dev eth0 && ip link set eth0 up"],
                   check=True, capture_output=True)
    before = cri.runtime.PodSandboxStats(
        cri.api.PodSandboxStatsRequest(pod_sandbox_id=sandbox_id)).stats.linux.network
    subprocess.run(["ip", "netns", "exec", node_netns, "busybox", "ping", "-q", "-c", "20",
                    "-i", "0.01", "-s", "1000", "-W", "1", "192.0.2.2"],
                   check=True, capture_output=True)
    after = cri.runtime.PodSandboxStats(
        cri.api.PodSandboxStatsRequest(pod_sandbox_id=sandbox_id)).stats.linux.network
    assert after.default_interface.name == "eth0"
    assert [i.name for i in after.interfaces] == ["eth0"]  # loopback is not pod traffic
    received = after.default_interface.rx_bytes.value - before.default_interface.rx_bytes.value
    sent = after.default_interface.tx_bytes.value - before.default_interface.tx_bytes.value
    assert received >= 20 * 1000 and sent >= 20 * 1000, (received, sent)
    metrics = cri.runtime.ListPodSandboxMetrics(cri.api.ListPodSandboxMetricsRequest())
    ours = next(m for m in metrics.pod_metrics if m.pod_sandbox_id == sandbox_id)
    rx = {tuple(m.label_values)[-1]: m.value.value for m in ours.metrics
          if m.name == "container_network_receive_bytes_total"}
    assert rx["eth0"] >= after.default_interface.rx_bytes.value
    assert "lo" in rx


# critest's list of what kubelet's /metrics/cadvisor shows (cri-tools pkg/validate/pod.go), less
# the blkio ones that need a disk with per-device accounting under the overlay.
EXPECTED_METRICS = (
    "container_cpu_cfs_periods_total",
    "container_cpu_cfs_throttled_periods_total",
    "container_cpu_cfs_throttled_seconds_total",
    "container_cpu_system_seconds_total",
    "container_cpu_usage_seconds_total",
    "container_cpu_user_seconds_total",
    "container_file_descriptors",
    "container_fs_inodes_free",
    "container_fs_inodes_total",
    "container_fs_limit_bytes",
    "container_fs_usage_bytes",
    "container_last_seen",
    "container_memory_cache",
    "container_memory_failcnt",
    "container_memory_failures_total",
    "container_memory_kernel_usage",
    "container_memory_mapped_file",
    "container_memory_max_usage_bytes",
    "container_memory_rss",
    "container_memory_swap",
    "container_memory_usage_bytes",
    "container_memory_working_set_bytes",
    "container_network_receive_bytes_total",
    "container_network_receive_errors_total",
    "container_network_receive_packets_dropped_total",
    "container_network_receive_packets_total",
    "container_network_transmit_bytes_total",
    "container_network_transmit_errors_total",
    "container_network_transmit_packets_dropped_total",
    "container_network_transmit_packets_total",
    "container_oom_events_total",
    "container_processes",
    "container_sockets",
    "container_spec_cpu_period",
    "container_spec_cpu_quota",
    "container_spec_cpu_shares",
    "container_spec_memory_limit_bytes",
    "container_spec_memory_swap_limit_bytes",
    "container_start_time_seconds",
    "container_threads",
    "container_threads_max",
    "container_ulimits_soft",
)


def test_metrics_match_their_descriptors(cri: CriClient, pod: Any, image: str) -> None:
    api = cri.api
    sandbox_id, _ = pod
    config = container_config(api, image, ["sleep", "3600"], name="metered")
    config.linux.resources.cpu_period = 100000
    config.linux.resources.cpu_quota = 20000
    config.linux.resources.cpu_shares = 1024
    config.linux.resources.memory_limit_in_bytes = 64 * MiB
    cid = run_container(cri, pod, config)
    descs = {d.name: d for d in cri.runtime.ListMetricDescriptors(
        api.ListMetricDescriptorsRequest()).descriptors}
    assert all(d.help and list(d.label_keys)[:3] == ["id", "name", "image"]
               for d in descs.values())
    pods = cri.runtime.ListPodSandboxMetrics(api.ListPodSandboxMetricsRequest()).pod_metrics
    ours = next(m for m in pods if m.pod_sandbox_id == sandbox_id)
    found: dict[str, list[Any]] = {}
    for metric in [*ours.metrics, *(m for c in ours.container_metrics for m in c.metrics)]:
        found.setdefault(metric.name, []).append(metric)
    missing = [name for name in EXPECTED_METRICS if name not in found]
    assert not missing
    for name, samples in found.items():
        assert all(len(m.label_values) == len(descs[name].label_keys) for m in samples), name
    [container] = ours.container_metrics
    assert container.container_id == cid
    value = {m.name: m.value.value for m in container.metrics}
    assert value["container_spec_cpu_quota"] == 20000
    assert value["container_spec_memory_limit_bytes"] == 64 * MiB
    assert value["container_processes"] == 1
    assert value["container_threads"] == 1
    assert value["container_start_time_seconds"] <= time.time()


def test_stream_twins_answer_as_the_lists(cri: CriClient, pod: Any, image: str) -> None:
    api = cri.api
    start(cri, pod, image, "exec sleep 3600", name="a")
    start(cri, pod, image, "exec sleep 3600", name="b")

    def streamed(call: Any, request: Any, field: str) -> list[Any]:
        return [item for page in call(request) for item in getattr(page, field)]

    rt = cri.runtime
    assert ({s.id for s in streamed(rt.StreamPodSandboxes, api.StreamPodSandboxesRequest(),
                                    "pod_sandboxes")}
            == {s.id for s in rt.ListPodSandbox(api.ListPodSandboxRequest()).items})
    assert ([c.id for c in streamed(rt.StreamContainers, api.StreamContainersRequest(),
                                    "containers")]
            == [c.id for c in rt.ListContainers(api.ListContainersRequest()).containers])
    assert ({s.attributes.id for s in streamed(rt.StreamContainerStats,
                                               api.StreamContainerStatsRequest(),
                                               "container_stats")}
            == {s.attributes.id for s in rt.ListContainerStats(
                api.ListContainerStatsRequest()).stats})
    assert ({s.attributes.id for s in streamed(rt.StreamPodSandboxStats,
                                               api.StreamPodSandboxStatsRequest(),
                                               "pod_sandbox_stats")}
            == {s.attributes.id for s in rt.ListPodSandboxStats(
                api.ListPodSandboxStatsRequest()).stats})
    assert ({m.pod_sandbox_id for m in streamed(rt.StreamPodSandboxMetrics,
                                                api.StreamPodSandboxMetricsRequest(),
                                                "pod_sandbox_metrics")}
            == {m.pod_sandbox_id for m in rt.ListPodSandboxMetrics(
                api.ListPodSandboxMetricsRequest()).pod_metrics})
    assert ([i.id for i in streamed(cri.images.StreamImages, api.StreamImagesRequest(),
                                    "images")]
            == [i.id for i in cri.images.ListImages(api.ListImagesRequest()).images])


def test_a_pod_with_its_own_cgroup_is_read_there(cri: CriClient, daemon: DaemonProcess,
                                                 image: str, tmp_path: Path) -> None:
    """kubelet names a parent per pod (/kubepods/.../pod<uid>): the pod's usage is that cgroup's,
    which also keeps what exited containers used."""
    from tests.support.leaks import cgroups_under

    api = cri.api
    parent = f"{daemon.cgroup_parent}/pod{secrets.token_hex(4)}"
    config = pod_config(api, tmp_path)
    config.linux.cgroup_parent = parent
    sandbox_id = cri.runtime.RunPodSandbox(api.RunPodSandboxRequest(config=config)).pod_sandbox_id
    try:
        run_container(cri, (sandbox_id, config), container_config(
            api, image, ["sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"],
            name="done"))
        cid = run_container(cri, (sandbox_id, config), container_config(
            api, image, ["sleep", "3600"], name="sleeper"))
        time.sleep(1.5)  # the first container has burnt its CPU and exited
        stats = cri.runtime.PodSandboxStats(
            api.PodSandboxStatsRequest(pod_sandbox_id=sandbox_id)).stats.linux
        assert [c.attributes.id for c in stats.containers] == [cid]
        assert stats.process.process_count.value == 2  # pause and sleep
        [sleeper] = stats.containers
        # The exited container's CPU stays in the pod's count.
        assert (stats.cpu.usage_core_nano_seconds.value
                > sleeper.cpu.usage_core_nano_seconds.value + 50_000_000)
    finally:
        cri.runtime.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))
        for path in cgroups_under(parent):
            Path(path).rmdir()
