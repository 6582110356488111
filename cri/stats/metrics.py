"""ListMetricDescriptors and ListPodSandboxMetrics: cAdvisor's metrics, so that kubelet can serve
`/metrics/cadvisor` from the runtime (PodAndContainerStatsFromCRI).

The names, help texts and label keys are cAdvisor's, as kubelet and dashboards know them. Every
metric carries the labels id, name and image (cAdvisor's base labels) plus its own. One table,
`DESCRIPTORS`, says what exists; each entry's `values` turns one sample into label values and
numbers, so a descriptor and its samples cannot disagree on labels.

Network metrics belong to the pod (its namespace); every other metric to a container. Unlike
ListPodSandboxStats, which sums what leaves the pod, the per-interface metrics include loopback.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cri.api.runtime.v1 import api_pb2 as v1
from cri.oci.cgroups import new_manager
from cri.oci.cgroups.stats import CgroupStats
from cri.stats.network import InterfaceCounters
from cri.stats.service import ContainerSample, PodSample, StatsService, working_set

BASE_LABELS = ("id", "name", "image")
NS_PER_S = 1_000_000_000

Values = list[tuple[tuple[str, ...], float]]


@dataclass(frozen=True, slots=True)
class ContainerView:
    """Everything a container metric may read, gathered once per container per call."""
    sample: ContainerSample
    cgroup: CgroupStats
    spec: dict[str, Any]
    pids: tuple[int, ...]
    fds: int  # open file descriptors of those processes
    sockets: int  # of which sockets
    fs: os.statvfs_result | None
    layer_bytes: int
    device: str  # the writable layer's filesystem, for the fs metrics' device label


@dataclass(frozen=True, slots=True)
class Descriptor:
    name: str
    help: str
    extra_labels: tuple[str, ...]
    counter: bool
    values: Callable[[Any], Values]  # ContainerView, or list[InterfaceCounters] for the pod

    def proto(self) -> v1.MetricDescriptor:
        return v1.MetricDescriptor(name=self.name, help=self.help,
                                   label_keys=[*BASE_LABELS, *self.extra_labels])


def _one(value: float | None) -> Values:
    return [] if value is None else [((), value)]


def _ns(value: int | None) -> float | None:
    return None if value is None else value / NS_PER_S


def _cg(pick: Callable[[CgroupStats], float | None]) -> Callable[[ContainerView], Values]:
    return lambda view: _one(pick(view.cgroup))


def _resources(view: ContainerView) -> dict[str, Any]:
    return dict(view.spec.get("linux", {}).get("resources", {}))


def _spec_value(section: str, key: str) -> Callable[[ContainerView], Values]:
    def values(view: ContainerView) -> Values:
        value = _resources(view).get(section, {}).get(key)
        return _one(value if isinstance(value, int) and value >= 0 else 0)
    return values


def _proc_fds(pids: Iterable[int]) -> tuple[int, int]:
    """(open file descriptors, of which sockets) of the processes."""
    fds = sockets = 0
    for pid in pids:
        directory = f"/proc/{pid}/fd"
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        fds += len(names)
        for name in names:
            try:
                if os.readlink(f"{directory}/{name}").startswith("socket:"):
                    sockets += 1
            except OSError:
                continue
    return fds, sockets


def _threads(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
    return total


def _nofile_soft(view: ContainerView) -> Values:
    pid = view.sample.container.status.pid
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft = line[26:].split()[0]
                    return [(("max_open_files",), -1 if soft == "unlimited" else int(soft))]
    except (OSError, ValueError, IndexError):
        pass
    return []


def _failures(view: ContainerView) -> Values:
    # NOTE: a container cgroup is a leaf, so its own and its hierarchy's counts are the same.
    out: Values = []
    for kind, value in (("pgfault", view.cgroup.page_faults),
                        ("pgmajfault", view.cgroup.major_page_faults)):
        if value is not None:
            out += [((kind, "container"), value), ((kind, "hierarchy"), value)]
    return out


def _device_name(major: int, minor: int) -> str:
    try:
        with open(f"/sys/dev/block/{major}:{minor}/uevent") as f:
            for line in f:
                if line.startswith("DEVNAME="):
                    return "/dev/" + line.split("=", 1)[1].strip()
    except OSError:
        pass
    return f"{major}:{minor}"


def _blkio(view: ContainerView) -> Values:
    return [((_device_name(e.major, e.minor), str(e.major), str(e.minor), e.operation), e.bytes)
            for e in view.cgroup.blkio]


def _fs_io(operation: str, field: str) -> Callable[[ContainerView], Values]:
    def values(view: ContainerView) -> Values:
        return [((_device_name(e.major, e.minor),), getattr(e, field))
                for e in view.cgroup.blkio if e.operation == operation]
    return values


def _fs(pick: Callable[[ContainerView, os.statvfs_result], float]) -> Callable[
        [ContainerView], Values]:
    def values(view: ContainerView) -> Values:
        return [] if view.fs is None else [((view.device,), pick(view, view.fs))]
    return values


def _hugetlb(index: int) -> Callable[[ContainerView], Values]:
    def values(view: ContainerView) -> Values:
        out: Values = []
        for size, pair in sorted(view.cgroup.hugetlb.items()):
            value = pair[index]
            if value is not None:
                out.append(((size,), value))
        return out
    return values


def _pressure(resource: str, line: str) -> Callable[[ContainerView], Values]:
    def values(view: ContainerView) -> Values:
        pressure = view.cgroup.pressure.get(resource)
        psi = None if pressure is None else getattr(pressure, line)
        return [] if psi is None else [((), psi.total_us / 1_000_000)]
    return values


def _net(pick: Callable[[InterfaceCounters], int]) -> Callable[[list[InterfaceCounters]], Values]:
    return lambda interfaces: [((i.name,), pick(i)) for i in interfaces]


D = Descriptor
CONTAINER_DESCRIPTORS: tuple[Descriptor, ...] = (
    D("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", ("cpu",),
      True, lambda v: [(("total",), v.cgroup.cpu_usage_ns / NS_PER_S)]
      if v.cgroup.cpu_usage_ns is not None else []),
    D("container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", (),
      True, _cg(lambda c: _ns(c.cpu_user_ns))),
    D("container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.",
      (), True, _cg(lambda c: _ns(c.cpu_system_ns))),
    D("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", (),
      True, _cg(lambda c: c.cpu_periods)),
    D("container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", (),
      True, _cg(lambda c: c.cpu_throttled_periods)),
    D("container_cpu_cfs_throttled_seconds_total",
      "Total time duration the container has been throttled.", (), True,
      _cg(lambda c: _ns(c.cpu_throttled_ns))),
    D("container_memory_usage_bytes",
      "Current memory usage in bytes, including all memory regardless of when it was accessed",
      (), False, _cg(lambda c: c.memory_usage)),
    D("container_memory_working_set_bytes", "Current working set in bytes.", (), False,
      _cg(working_set)),
    D("container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", (), False,
      _cg(lambda c: c.memory_max_usage)),
    D("container_memory_rss", "Size of RSS in bytes.", (), False, _cg(lambda c: c.memory_rss)),
    D("container_memory_cache", "Number of bytes of page cache memory.", (), False,
      _cg(lambda c: c.memory_cache)),
    D("container_memory_mapped_file", "Size of memory mapped files in bytes.", (), False,
      _cg(lambda c: c.memory_mapped_file)),
    D("container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", (), False,
      _cg(lambda c: c.memory_kernel)),
    D("container_memory_swap", "Container swap usage in bytes.", (), False,
      _cg(lambda c: c.swap_usage or 0)),
    D("container_memory_failcnt", "Number of memory usage hits limits", (), True,
      _cg(lambda c: c.memory_failcnt)),
    D("container_memory_failures_total", "Cumulative count of memory allocation failures.",
      ("failure_type", "scope"), True, _failures),
    D("container_oom_events_total", "Count of out of memory events observed for the container",
      (), True, _cg(lambda c: c.oom_events or 0)),
    D("container_processes", "Number of processes running inside the container.", (), False,
      lambda v: _one(v.cgroup.pids_current if v.cgroup.pids_current is not None
                     else len(v.pids))),
    D("container_threads", "Number of threads running inside the container", (), False,
      lambda v: _one(_threads(v.pids))),
    D("container_threads_max",
      "Maximum number of threads allowed inside the container, infinity if value is zero", (),
      False, _cg(lambda c: c.pids_limit or 0)),
    D("container_file_descriptors", "Number of open file descriptors for the container.", (),
      False, lambda v: _one(v.fds)),
    D("container_sockets", "Number of open sockets for the container.", (), False,
      lambda v: _one(v.sockets)),
    D("container_ulimits_soft",
      "Soft ulimit values for the container root process. Unlimited if -1, except priority "
      "and nice", ("ulimit",), False, _nofile_soft),
    D("container_fs_usage_bytes",
      "Number of bytes that are consumed by the container on this filesystem.", ("device",),
      False, _fs(lambda v, st: v.layer_bytes)),
    D("container_fs_limit_bytes",
      "Number of bytes that can be consumed by the container on this filesystem.",
      ("device",), False, _fs(lambda v, st: st.f_blocks * st.f_frsize)),
    D("container_fs_inodes_total", "Number of Inodes", ("device",), False,
      _fs(lambda v, st: st.f_files)),
    D("container_fs_inodes_free", "Number of available Inodes", ("device",), False,
      _fs(lambda v, st: st.f_ffree)),
    D("container_fs_reads_bytes_total", "Cumulative count of bytes read", ("device",), True,
      _fs_io("Read", "bytes")),
    D("container_fs_reads_total", "Cumulative count of reads completed", ("device",), True,
      _fs_io("Read", "ios")),
    D("container_fs_writes_bytes_total", "Cumulative count of bytes written", ("device",), True,
      _fs_io("Write", "bytes")),
    D("container_fs_writes_total", "Cumulative count of writes completed", ("device",), True,
      _fs_io("Write", "ios")),
    D("container_blkio_device_usage_total", "Blkio Device bytes usage",
      ("device", "major", "minor", "operation"), True, _blkio),
    D("container_hugetlb_usage_bytes", "Current hugepage usage", ("pagesize",), False,
      _hugetlb(0)),
    D("container_hugetlb_max_usage_bytes", "Maximum hugepage usages recorded", ("pagesize",),
      False, _hugetlb(1)),
    D("container_pressure_cpu_waiting_seconds_total",
      "Total time duration tasks in the container have waited due to CPU pressure.", (), True,
      _pressure("cpu", "some")),
    D("container_pressure_cpu_stalled_seconds_total",
      "Total time duration no tasks in the container could make progress due to CPU "
      "congestion.", (), True, _pressure("cpu", "full")),
    D("container_pressure_memory_waiting_seconds_total",
      "Total time duration tasks in the container have waited due to memory pressure.", (),
      True, _pressure("memory", "some")),
    D("container_pressure_memory_stalled_seconds_total",
      "Total time duration no tasks in the container could make progress due to memory "
      "congestion.", (), True, _pressure("memory", "full")),
    D("container_pressure_io_waiting_seconds_total",
      "Total time duration tasks in the container have waited due to IO pressure.", (), True,
      _pressure("io", "some")),
    D("container_pressure_io_stalled_seconds_total",
      "Total time duration no tasks in the container could make progress due to IO "
      "congestion.", (), True, _pressure("io", "full")),
    D("container_spec_cpu_period", "CPU period of the container.", (), False,
      _spec_value("cpu", "period")),
    D("container_spec_cpu_quota", "CPU quota of the container.", (), False,
      _spec_value("cpu", "quota")),
    D("container_spec_cpu_shares", "CPU share of the container.", (), False,
      _spec_value("cpu", "shares")),
    D("container_spec_memory_limit_bytes", "Memory limit for the container.", (), False,
      _spec_value("memory", "limit")),
    D("container_spec_memory_reservation_limit_bytes",
      "Memory reservation limit for the container.", (), False,
      _spec_value("memory", "reservation")),
    D("container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", (),
      False, _spec_value("memory", "swap")),
    D("container_start_time_seconds", "Start time of the container since unix epoch in seconds.",
      (), False, lambda v: _one(v.sample.container.status.started_at / NS_PER_S)),
    D("container_last_seen", "Last time a container was seen by the exporter", (), False,
      lambda v: _one(v.sample.at_ns / NS_PER_S)),
)

POD_DESCRIPTORS: tuple[Descriptor, ...] = (
    D("container_network_receive_bytes_total", "Cumulative count of bytes received",
      ("interface",), True, _net(lambda i: i.rx_bytes)),
    D("container_network_receive_packets_total", "Cumulative count of packets received",
      ("interface",), True, _net(lambda i: i.rx_packets)),
    D("container_network_receive_packets_dropped_total",
      "Cumulative count of packets dropped while receiving", ("interface",), True,
      _net(lambda i: i.rx_dropped)),
    D("container_network_receive_errors_total",
      "Cumulative count of errors encountered while receiving", ("interface",), True,
      _net(lambda i: i.rx_errors)),
    D("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted",
      ("interface",), True, _net(lambda i: i.tx_bytes)),
    D("container_network_transmit_packets_total", "Cumulative count of packets transmitted",
      ("interface",), True, _net(lambda i: i.tx_packets)),
    D("container_network_transmit_packets_dropped_total",
      "Cumulative count of packets dropped while transmitting", ("interface",), True,
      _net(lambda i: i.tx_dropped)),
    D("container_network_transmit_errors_total",
      "Cumulative count of errors encountered while transmitting", ("interface",), True,
      _net(lambda i: i.tx_errors)),
)


def descriptors() -> list[v1.MetricDescriptor]:
    return [d.proto() for d in (*CONTAINER_DESCRIPTORS, *POD_DESCRIPTORS)]


def _metrics(table: Sequence[Descriptor], subject: Any, base: tuple[str, ...],
             at_ns: int) -> list[v1.Metric]:
    out = []
    for d in table:
        kind = v1.COUNTER if d.counter else v1.GAUGE
        for labels, value in d.values(subject):
            # NOTE: CRI carries integers: seconds are whole seconds, cut down, never up.
            out.append(v1.Metric(name=d.name, timestamp=at_ns, metric_type=kind,
                                 label_values=[*base, *labels],
                                 value=v1.UInt64Value(value=max(int(value), 0))))
    return out


class MetricsCollector:
    def __init__(self, stats: StatsService) -> None:
        self._stats = stats
        self._devices: dict[str, str] = {}

    def _fs_device(self, mountpoint: str) -> str:
        if mountpoint not in self._devices:
            device = mountpoint
            try:
                with open("/proc/self/mounts") as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) > 1 and parts[1] == mountpoint:
                            device = parts[0]
            except OSError:
                pass
            self._devices[mountpoint] = device
        return self._devices[mountpoint]

    def _view(self, sample: ContainerSample) -> ContainerView | None:
        if sample.cgroup is None:
            return None
        spec = self._stats.oci_spec(sample.container)
        path = sample.sandbox.container_cgroups_path(sample.container.id)
        pids = tuple(new_manager(path, self._stats.layout).pids())
        mount = self._stats.fs_mountpoint
        try:
            fs = os.statvfs(mount)
        except OSError:
            fs = None
        layer = self._stats.layer_usage(sample.container.id)
        fds, sockets = _proc_fds(pids)
        return ContainerView(sample, sample.cgroup, spec, pids, fds, sockets, fs, layer.used_bytes,
                             self._fs_device(mount))

    def pod_metrics(self) -> list[v1.PodSandboxMetrics]:
        out = []
        for pod in self._stats.pod_samples():
            out.append(self._pod(pod))
        return out

    def _pod(self, pod: PodSample) -> v1.PodSandboxMetrics:
        s = pod.sandbox
        result = v1.PodSandboxMetrics(pod_sandbox_id=s.id)
        base = (s.id, s.config.metadata.name, s.image_id)
        result.metrics.extend(_metrics(POD_DESCRIPTORS, list(pod.interfaces), base, pod.at_ns))
        for sample in pod.containers:
            view = self._view(sample)
            if view is None:
                continue
            c = sample.container
            result.container_metrics.add(container_id=c.id, metrics=_metrics(
                CONTAINER_DESCRIPTORS, view, (c.id, c.config.metadata.name, c.image_ref),
                sample.at_ns))
        return result
