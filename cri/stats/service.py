"""ContainerStats, PodSandboxStats and their List twins, from one sample per object per call.

A container's numbers come from its own cgroup. A pod's come from the pod's cgroup when kubelet
gave the pod a parent of its own (`/kubepods/.../pod<uid>`); when pods share the daemon's default
parent, the pod is the sum of its pause task and its running containers.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from cri.api.runtime.v1 import api_pb2 as v1
from cri.config import Config
from cri.container import Container, ContainerService
from cri.oci.cgroups import new_manager
from cri.oci.cgroups.detect import Layout, detect
from cri.oci.cgroups.stats import CgroupStats, Pressure, PsiLine
from cri.sandbox import READY, Sandbox, SandboxService
from cri.stats.cpu_rate import UsageRates
from cri.stats.network import InterfaceCounters, default_interface, pod_interfaces, read_interfaces
from cri.stats.writable_layer import LayerUsage, LayerUsageCache, mountpoint_of


@dataclass(frozen=True, slots=True)
class ContainerSample:
    container: Container
    sandbox: Sandbox
    cgroup: CgroupStats | None  # None unless running
    at_ns: int


@dataclass(frozen=True, slots=True)
class PodSample:
    sandbox: Sandbox
    cgroup: CgroupStats | None  # None unless ready
    interfaces: tuple[InterfaceCounters, ...]  # every interface of the pod's namespace
    containers: tuple[ContainerSample, ...]  # the running ones
    at_ns: int


def _labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def combine(parts: Sequence[CgroupStats]) -> CgroupStats:
    """The sum of several cgroups' counters; limits are unknown for a sum and left None."""
    if not parts:
        return CgroupStats()
    values: dict[str, object] = {}
    for f in fields(CgroupStats):
        if f.name in ("memory_limit", "swap_limit", "pids_limit", "hugetlb", "blkio",
                      "pressure"):
            continue
        present: list[int] = [getattr(p, f.name) for p in parts if getattr(p, f.name) is not None]
        values[f.name] = sum(present) if present else None
    return replace(CgroupStats(), **values)  # type: ignore[arg-type]


class StatsService:
    def __init__(self, config: Config, sandboxes: SandboxService, containers: ContainerService,
                 layout: Layout | None = None) -> None:
        self._config = config
        self._sandboxes = sandboxes
        self._containers = containers
        self._layout = layout
        self._rates = UsageRates()
        self._layers = LayerUsageCache()
        self._fs_mount: str | None = None

    # --- sampling --------------------------------------------------------------------------

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = detect()
        return self._layout

    def cgroup_stats(self, path: str) -> CgroupStats:
        return new_manager(path, self.layout).stats()

    def _sample_container(self, container: Container, sandbox: Sandbox) -> ContainerSample:
        cgroup = None
        if container.status.state == v1.CONTAINER_RUNNING:
            cgroup = self.cgroup_stats(sandbox.container_cgroups_path(container.id))
        return ContainerSample(container, sandbox, cgroup, time.time_ns())

    def _own_pod_cgroup(self, sandbox: Sandbox) -> bool:
        parent = sandbox.config.linux.cgroup_parent
        return bool(parent) and parent.rstrip("/") != self._config.cgroup_parent.rstrip("/")

    def _sample_pod(self, sandbox: Sandbox, containers: Iterable[Container]) -> PodSample:
        running = tuple(self._sample_container(c, sandbox) for c in containers
                        if c.status.state == v1.CONTAINER_RUNNING)
        cgroup: CgroupStats | None = None
        interfaces: tuple[InterfaceCounters, ...] = ()
        if sandbox.status.state == READY:
            if self._own_pod_cgroup(sandbox):
                cgroup = self.cgroup_stats(sandbox.pod_cgroup)
            else:
                own = self.cgroup_stats(sandbox.cgroups_path)
                cgroup = combine([own, *(s.cgroup for s in running if s.cgroup is not None)])
            if not sandbox.host_network:
                interfaces = tuple(read_interfaces(sandbox.status.pid))
        return PodSample(sandbox, cgroup, interfaces, running, time.time_ns())

    def container_samples(self, container_id: str = "", sandbox_id: str = "",
                          labels: Mapping[str, str] | None = None) -> list[ContainerSample]:
        sandboxes = {s.id: s for s in self._sandboxes.store.list()}
        if sandbox_id:
            found = self._sandboxes.store.find(sandbox_id)
            if found is None:
                return []
            sandbox_id = found.id
        samples = []
        for c in self._containers.list(sandbox_id or None):
            if c.status.state != v1.CONTAINER_RUNNING or c.sandbox_id not in sandboxes:
                continue
            if container_id and not c.id.startswith(container_id):
                continue
            if labels and not _labels_match(labels, c.config.labels):
                continue
            samples.append(self._sample_container(c, sandboxes[c.sandbox_id]))
        if not (container_id or sandbox_id or labels):
            self._forget_unless(s.container.id for s in samples)
        return samples

    def pod_samples(self, sandbox_id: str = "",
                    labels: Mapping[str, str] | None = None) -> list[PodSample]:
        by_pod: dict[str, list[Container]] = {}
        for c in self._containers.list():
            by_pod.setdefault(c.sandbox_id, []).append(c)
        samples = []
        for sandbox in self._sandboxes.list():
            if sandbox.status.state != READY:
                continue
            if sandbox_id and not sandbox.id.startswith(sandbox_id):
                continue
            if labels and not _labels_match(labels, sandbox.config.labels):
                continue
            samples.append(self._sample_pod(sandbox, by_pod.get(sandbox.id, [])))
        return samples

    def _forget_unless(self, container_ids: Iterable[str]) -> None:
        """After a full listing: drop the rates and layer sizes of containers that are gone."""
        keep = set(container_ids)
        keep.update(f"pod:{s.id}" for s in self._sandboxes.store.list())
        self._rates.retain(keep)
        self._layers.retain(keep)

    # --- CRI answers -----------------------------------------------------------------------

    def container_stats(self, container_id: str) -> v1.ContainerStats:
        container = self._containers.get(container_id)  # NotFound for an unknown id
        sandbox = self._sandboxes.get(container.sandbox_id)
        return self.container_proto(self._sample_container(container, sandbox))

    def list_container_stats(self, f: v1.ContainerStatsFilter) -> list[v1.ContainerStats]:
        return [self.container_proto(s) for s in self.container_samples(
            f.id, f.pod_sandbox_id, f.label_selector)]

    def pod_stats(self, sandbox_id: str) -> v1.PodSandboxStats:
        sandbox = self._sandboxes.get(sandbox_id)  # NotFound for an unknown id
        return self.pod_proto(self._sample_pod(sandbox, self._containers.list(sandbox.id)))

    def list_pod_stats(self, f: v1.PodSandboxStatsFilter) -> list[v1.PodSandboxStats]:
        return [self.pod_proto(s) for s in self.pod_samples(f.id, f.label_selector)]

    def container_proto(self, sample: ContainerSample) -> v1.ContainerStats:
        c = sample.container
        out = v1.ContainerStats(attributes=v1.ContainerAttributes(
            id=c.id, metadata=c.config.metadata, labels=c.config.labels,
            annotations=c.config.annotations))
        if sample.cgroup is not None:
            self._fill(out.cpu, out.memory, sample.cgroup, c.id, sample.at_ns)
            fill_swap(out.swap, sample.cgroup, sample.at_ns)
            fill_io(out.io, sample.cgroup, sample.at_ns)
        layer = self.layer_usage(c.id)
        out.writable_layer.timestamp = layer.at_ns
        out.writable_layer.fs_id.mountpoint = self.fs_mountpoint
        out.writable_layer.used_bytes.value = layer.used_bytes
        out.writable_layer.inodes_used.value = layer.inodes
        return out

    def pod_proto(self, sample: PodSample) -> v1.PodSandboxStats:
        s = sample.sandbox
        out = v1.PodSandboxStats(attributes=v1.PodSandboxAttributes(
            id=s.id, metadata=s.config.metadata, labels=s.config.labels,
            annotations=s.config.annotations))
        linux = out.linux
        if sample.cgroup is not None:
            self._fill(linux.cpu, linux.memory, sample.cgroup, f"pod:{s.id}", sample.at_ns)
            fill_io(linux.io, sample.cgroup, sample.at_ns)
            linux.process.timestamp = sample.at_ns
            if sample.cgroup.pids_current is not None:
                linux.process.process_count.value = sample.cgroup.pids_current
            fill_network(linux.network, pod_interfaces(list(sample.interfaces)), sample.at_ns)
        linux.containers.extend(self.container_proto(c) for c in sample.containers)
        return out

    def oci_spec(self, container: Container) -> dict[str, Any]:
        return self._containers.oci_spec(container) or {}

    def layer_usage(self, container_id: str) -> LayerUsage:
        upper = self._containers.rootfs_layout(container_id).upper
        return self._layers.usage(container_id, str(upper))

    @property
    def fs_mountpoint(self) -> str:
        if self._fs_mount is None:
            self._fs_mount = mountpoint_of(str(self._containers.paths.root))
        return self._fs_mount

    def _fill(self, cpu: v1.CpuUsage, memory: v1.MemoryUsage, cg: CgroupStats, key: str,
              at_ns: int) -> None:
        cpu.timestamp = at_ns
        if cg.cpu_usage_ns is not None:
            cpu.usage_core_nano_seconds.value = cg.cpu_usage_ns
            rate = self._rates.rate(key, cg.cpu_usage_ns, at_ns)
            if rate is not None:
                cpu.usage_nano_cores.value = rate
        _fill_psi(cpu.psi, cg.pressure.get("cpu"))
        fill_memory(memory, cg, at_ns)


def working_set(cg: CgroupStats) -> int | None:
    """Usage less inactive file pages: what kubelet evicts on (cAdvisor's definition)."""
    if cg.memory_usage is None:
        return None
    return max(cg.memory_usage - (cg.memory_inactive_file or 0), 0)


def fill_memory(out: v1.MemoryUsage, cg: CgroupStats, at_ns: int) -> None:
    out.timestamp = at_ns
    ws = working_set(cg)
    for name, value in (("working_set_bytes", ws), ("usage_bytes", cg.memory_usage),
                        ("rss_bytes", cg.memory_rss), ("page_faults", cg.page_faults),
                        ("major_page_faults", cg.major_page_faults)):
        if value is not None:
            getattr(out, name).value = value
    if cg.memory_limit is not None and ws is not None:
        out.available_bytes.value = max(cg.memory_limit - ws, 0)
    _fill_psi(out.psi, cg.pressure.get("memory"))


def fill_swap(out: v1.SwapUsage, cg: CgroupStats, at_ns: int) -> None:
    out.timestamp = at_ns
    if cg.swap_usage is not None:
        out.swap_usage_bytes.value = cg.swap_usage
        if cg.swap_limit is not None:
            out.swap_available_bytes.value = max(cg.swap_limit - cg.swap_usage, 0)


def fill_io(out: v1.IoUsage, cg: CgroupStats, at_ns: int) -> None:
    out.timestamp = at_ns
    _fill_psi(out.psi, cg.pressure.get("io"))


def _fill_psi(out: v1.PsiStats, pressure: Pressure | None) -> None:
    """Left unset (not zero) where the kernel keeps no PSI for the cgroup."""
    if pressure is None:
        return
    for line, target in ((pressure.some, out.Some), (pressure.full, out.Full)):
        if line is not None:
            _psi_data(target, line)


def _psi_data(out: v1.PsiData, line: PsiLine) -> None:
    out.Total, out.Avg10, out.Avg60, out.Avg300 = (line.total_us, line.avg10, line.avg60,
                                                   line.avg300)


def _u64(value: int) -> v1.UInt64Value:
    return v1.UInt64Value(value=value)


def fill_network(out: v1.NetworkUsage, interfaces: list[InterfaceCounters], at_ns: int) -> None:
    out.timestamp = at_ns
    for i in interfaces:
        out.interfaces.add(name=i.name, rx_bytes=_u64(i.rx_bytes), rx_errors=_u64(i.rx_errors),
                           tx_bytes=_u64(i.tx_bytes), tx_errors=_u64(i.tx_errors))
    default = default_interface(interfaces)
    if default is not None:
        out.default_interface.CopyFrom(next(x for x in out.interfaces if x.name == default.name))
