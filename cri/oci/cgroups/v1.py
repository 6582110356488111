"""cgroup v1 (and the v1 half of hybrid hosts): one directory per hierarchy.

The container joins every mounted hierarchy (named ones like name=systemd included, as runc does)
so tools inside and outside see one consistent cgroup path. Resources are written to the hierarchy
that carries the controller; co-mounted controllers (cpu,cpuacct) share one directory.
"""

from __future__ import annotations

import os

from .. import lazylog
from . import freezer, fs
from .detect import Hierarchy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from .stats import CgroupStats

    Writer = Callable[[str, str], None]

log = lazylog.getLogger(__name__)


def _dev(rule: Mapping[str, Any]) -> str:
    kind = rule.get("type") or "a"
    major = rule.get("major")
    minor = rule.get("minor")
    major_s = "*" if major is None or major == -1 else str(major)
    minor_s = "*" if minor is None or minor == -1 else str(minor)
    access = rule.get("access") or "rwm"
    if kind == "a":
        return "a"
    return f"{kind} {major_s}:{minor_s} {access}"


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _single_threaded() -> bool:
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


class V1Manager:
    version = 1

    def __init__(
        self, hierarchies: Sequence[Hierarchy], path: str, write: Writer = fs.write,
        unified: str | None = None,
    ) -> None:
        self._path = path
        self._hier = list(hierarchies)
        self._write = write
        self._dirs = {h.name: os.path.join(h.mountpoint, path.lstrip("/")) for h in self._hier}
        # A hybrid host's v2 mount: only read, for the pressure (PSI) files it alone has.
        self._unified = None if unified is None else os.path.join(unified, path.lstrip("/"))

    @classmethod
    def from_dirs(cls, dirs: Mapping[str, str], write: Writer = fs.write) -> V1Manager:
        """A manager for recorded directories; a hierarchy's name lists its controllers."""
        # NOTE: the mount points are unknown here; only create() needs them, never run on these.
        hierarchies = [Hierarchy(name, "", frozenset(name.split(","))) for name in dirs]
        self = cls(hierarchies, "/", write=write)
        self._dirs = dict(dirs)
        return self

    @property
    def paths(self) -> dict[str, str]:
        return dict(self._dirs)

    def _dir_for(self, controller: str) -> str | None:
        for h in self._hier:
            if controller in h.controllers:
                return self._dirs[h.name]
        return None

    def create(self, resources: Mapping[str, Any]) -> None:
        for h in self._hier:
            os.makedirs(self._dirs[h.name], exist_ok=True)
        cpuset = self._dir_for("cpuset")
        if cpuset is not None:
            self._inherit_cpuset(cpuset)
        self.apply(resources)

    def _inherit_cpuset(self, leaf: str) -> None:
        """An empty cpuset.cpus/mems refuses tasks; copy the parent's values down from the top."""
        h = next(h for h in self._hier if "cpuset" in h.controllers)
        chain = []
        d = leaf
        while d.rstrip("/") != h.mountpoint.rstrip("/"):
            chain.append(d)
            d = os.path.dirname(d)
        for d in reversed(chain):
            parent = os.path.dirname(d)
            for name in ("cpuset.cpus", "cpuset.mems"):
                try:
                    current = fs.read(os.path.join(d, name))
                except FileNotFoundError:
                    current = ""
                if not current:
                    self._write(os.path.join(d, name), fs.read(os.path.join(parent, name)))

    def _set(self, controller: str, name: str, value: object) -> None:
        d = self._dir_for(controller)
        if d is None:
            log.warning("cgroup v1 controller %s is not mounted; %s not set", controller, name)
            return
        self._write(os.path.join(d, name), str(value))

    def _current_limit(self, memory_dir: str) -> int:
        try:
            return int(fs.read(os.path.join(memory_dir, "memory.limit_in_bytes")))
        except (FileNotFoundError, ValueError):
            return 0

    def apply(self, resources: Mapping[str, Any]) -> None:
        mem = resources.get("memory") or {}
        if mem:
            limit, swap = mem.get("limit"), mem.get("swap")
            memsw_dir = self._dir_for("memory")
            has_memsw = memsw_dir is not None and os.path.exists(
                os.path.join(memsw_dir, "memory.memsw.limit_in_bytes")
            )
            if limit == -1 and swap is None and has_memsw:
                swap = -1  # runc: unlimited memory without a swap value means unlimited swap too
            # NOTE: the kernel keeps memsw >= limit at every moment, so the order depends on the
            # current limit (runc's setMemoryAndSwap): swap first when it grows past it.
            if (
                swap is not None
                and has_memsw
                and limit is not None
                and memsw_dir is not None
                and (swap == -1 or self._current_limit(memsw_dir) < swap)
            ):
                self._set("memory", "memory.memsw.limit_in_bytes", swap)
                self._set("memory", "memory.limit_in_bytes", limit)
            else:
                if limit is not None:
                    self._set("memory", "memory.limit_in_bytes", limit)
                if swap is not None:
                    if has_memsw:
                        self._set("memory", "memory.memsw.limit_in_bytes", swap)
                    else:
                        log.warning("memory.swap requested but swap accounting is off; ignored")
            if mem.get("reservation") is not None:
                self._set("memory", "memory.soft_limit_in_bytes", mem["reservation"])
            if mem.get("swappiness") is not None and 0 <= mem["swappiness"] <= 100:
                self._set("memory", "memory.swappiness", mem["swappiness"])
            if mem.get("disableOOMKiller"):
                self._set("memory", "memory.oom_control", 1)
        cpu = resources.get("cpu") or {}
        if cpu:
            if cpu.get("shares"):
                self._set("cpu", "cpu.shares", cpu["shares"])
            if cpu.get("period"):
                self._set("cpu", "cpu.cfs_period_us", cpu["period"])
            if cpu.get("quota") is not None and cpu.get("quota") != 0:
                self._set("cpu", "cpu.cfs_quota_us", cpu["quota"])
            if cpu.get("realtimePeriod"):
                self._set("cpu", "cpu.rt_period_us", cpu["realtimePeriod"])
            if cpu.get("realtimeRuntime"):
                self._set("cpu", "cpu.rt_runtime_us", cpu["realtimeRuntime"])
            if cpu.get("cpus"):
                self._set("cpuset", "cpuset.cpus", cpu["cpus"])
            if cpu.get("mems"):
                self._set("cpuset", "cpuset.mems", cpu["mems"])
        pids = resources.get("pids") or {}
        if "limit" in pids and pids["limit"] is not None:
            self._set("pids", "pids.max", "max" if pids["limit"] <= 0 else pids["limit"])
        blkio = resources.get("blockIO") or {}
        if blkio.get("weight"):
            self._set("blkio", "blkio.weight", blkio["weight"])
        if blkio.get("leafWeight"):
            self._set("blkio", "blkio.leaf_weight", blkio["leafWeight"])
        for key, name in (
            ("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
            ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
            ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
            ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"),
        ):
            for dev in blkio.get(key) or []:
                self._set("blkio", name, f"{dev['major']}:{dev['minor']} {dev['rate']}")
        for hp in resources.get("hugepageLimits") or []:
            self._set("hugetlb", f"hugetlb.{hp['pageSize']}.limit_in_bytes", hp["limit"])
        net = resources.get("network") or {}
        if net.get("classID") is not None:
            self._set("net_cls", "net_cls.classid", net["classID"])
        for prio in net.get("priorities") or []:
            self._set("net_prio", "net_prio.ifpriomap", f"{prio['name']} {prio['priority']}")
        devices = resources.get("devices")
        if devices is not None and self._dir_for("devices") is not None:
            for rule in devices:
                self._set(
                    "devices", "devices.allow" if rule.get("allow") else "devices.deny", _dev(rule)
                )

    def update(self, resources: Mapping[str, Any]) -> None:
        """Apply new limits to the live cgroup (`runc update`: devices are never touched)."""
        if resources.get("unified"):
            from ..errors import Unsupported

            raise Unsupported("linux.resources.unified needs cgroup v2; this host uses v1")
        self.apply({k: v for k, v in resources.items() if k != "devices"})

    def freezer_state(self) -> str | None:
        return freezer.v1_state(self._dir_for("freezer"))

    def freeze(self) -> None:
        d = self._dir_for("freezer")
        if d is None:
            raise freezer.FreezeFailed("the v1 freezer hierarchy is not mounted")
        freezer.v1_freeze(d, self._write)

    def thaw(self) -> None:
        d = self._dir_for("freezer")
        if d is not None:
            freezer.v1_thaw(d, self._write)

    def add(self, pid: int) -> None:
        # NOTE: the executor adds a forked init or exec'd process itself (pid 0), while it is
        # single-threaded: its one thread then moves through `tasks`, for which the kernel does
        # not take cgroup_threadgroup_rwsem for writing. Through cgroup.procs, the first move
        # after a quiet spell waits for an RCU grace period (15 ms on this host, warmup.py).
        name, value = ("cgroup.procs", str(pid))
        if pid == 0 and _single_threaded():
            name, value = ("tasks", "0")
        for d in self._dirs.values():
            self._write(os.path.join(d, name), value)

    def pids(self) -> list[int]:
        for key in ("pids", "memory", "freezer", "cpu"):
            for name, d in self._dirs.items():
                if key in name.split(","):
                    return fs.read_pids(os.path.join(d, "cgroup.procs"))
        for d in self._dirs.values():
            return fs.read_pids(os.path.join(d, "cgroup.procs"))
        return []

    def stats(self) -> CgroupStats:
        from .stats import dir_reader, parse_v1

        readers, names = {}, {}
        for h in self._hier:
            for controller in h.controllers:
                readers[controller] = dir_reader(self._dirs[h.name])
        hugetlb = self._dir_for("hugetlb")
        if hugetlb is not None:
            names["hugetlb"] = _listdir(hugetlb)
        unified = None
        if self._unified is not None and os.path.isdir(self._unified):
            unified = dir_reader(self._unified)
        return parse_v1(readers, names, unified)

    def destroy(self) -> None:
        errors = []
        for d in self._dirs.values():
            try:
                fs.rmdir(d)
            except OSError as e:
                errors.append(f"{d}: {e}")
        if errors:
            raise OSError(16, "cannot remove cgroups: " + "; ".join(errors))
