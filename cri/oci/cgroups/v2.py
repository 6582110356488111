"""cgroup v2 (unified): one directory, controllers enabled in every ancestor's subtree_control."""

from __future__ import annotations

import os

from .. import lazylog
from . import freezer, fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from .stats import CgroupStats

    Writer = Callable[[str, str], None]

log = lazylog.getLogger(__name__)


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) to cpu.weight (1..10000), runc's formula."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io(weight: int) -> int:
    """blkio.weight (10..1000) to io.weight (1..10000), runc's formula."""
    return 1 + (weight - 10) * 9999 // 990


def _limit(value: int | None) -> str:
    return "max" if value is None or value < 0 else str(value)


class V2Manager:
    version = 2

    def __init__(self, mount: str, path: str, write: Writer = fs.write) -> None:
        self._mount = mount
        self._dir = os.path.join(mount, path.lstrip("/"))
        self._write = write

    @classmethod
    def from_dir(cls, directory: str, write: Writer = fs.write) -> V2Manager:
        """A manager for a recorded directory; the mount is the topmost cgroup above it."""
        mount = directory
        while True:
            parent = os.path.dirname(mount)
            if parent == mount or not os.path.exists(os.path.join(parent, "cgroup.controllers")):
                break
            mount = parent
        return cls(mount, os.path.relpath(directory, mount), write=write)

    @property
    def paths(self) -> dict[str, str]:
        return {"": self._dir}

    def _needed(self, resources: Mapping[str, Any]) -> list[str]:
        needed = []
        if resources.get("cpu"):
            needed.append("cpu")
            if resources["cpu"].get("cpus") or resources["cpu"].get("mems"):
                needed.append("cpuset")
        if resources.get("memory"):
            needed.append("memory")
        if resources.get("pids"):
            needed.append("pids")
        if resources.get("blockIO"):
            needed.append("io")
        if resources.get("hugepageLimits"):
            needed.append("hugetlb")
        for key in resources.get("unified") or {}:
            needed.append(key.split(".", 1)[0])
        return list(dict.fromkeys(needed))

    def create(self, resources: Mapping[str, Any]) -> None:
        self._enable(self._needed(resources))
        self.apply(resources)

    def update(self, resources: Mapping[str, Any]) -> None:
        """New limits on the live cgroup; controllers not needed at create are enabled first."""
        resources = {k: v for k, v in resources.items() if k != "devices"}
        self._enable(self._needed(resources))
        self.apply(resources)

    def _enable(self, needed: list[str]) -> None:
        """Enable what the leaf needs in each ancestor, top down, limited to what each level
        offers; creates the directories on the way."""
        rel = os.path.relpath(self._dir, self._mount)
        d = self._mount
        for part in rel.split("/"):
            available = set(fs.read(os.path.join(d, "cgroup.controllers")).split())
            wanted = [c for c in needed if c in available]
            missing = [c for c in needed if c not in available]
            if missing:
                log.warning("cgroup v2 controllers %s unavailable at %s", missing, d)
            if wanted:
                enabled = set(fs.read(os.path.join(d, "cgroup.subtree_control")).split())
                todo = [c for c in wanted if c not in enabled]
                if todo:
                    self._write(
                        os.path.join(d, "cgroup.subtree_control"), " ".join("+" + c for c in todo)
                    )
            needed = wanted
            d = os.path.join(d, part)
            os.makedirs(d, exist_ok=True)

    def _set(self, name: str, value: object) -> None:
        self._write(os.path.join(self._dir, name), str(value))

    def apply(self, resources: Mapping[str, Any]) -> None:
        cpu = resources.get("cpu") or {}
        if cpu.get("shares"):
            self._set("cpu.weight", shares_to_weight(cpu["shares"]))
        if cpu.get("quota") is not None or cpu.get("period"):
            quota = cpu.get("quota")
            period = cpu.get("period") or 100000
            self._set("cpu.max", f"{_limit(quota if quota else -1)} {period}")
        if cpu.get("cpus"):
            self._set("cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            self._set("cpuset.mems", cpu["mems"])
        mem = resources.get("memory") or {}
        if mem.get("limit") is not None:
            self._set("memory.max", _limit(mem["limit"]))
        if mem.get("swap") is not None:
            # OCI swap is memory+swap (v1 semantics); v2's swap.max is swap alone.
            swap, limit = mem["swap"], mem.get("limit")
            if swap < 0:
                self._set("memory.swap.max", "max")
            elif limit is not None and limit >= 0:
                self._set("memory.swap.max", max(swap - limit, 0))
        if mem.get("reservation") is not None:
            self._set("memory.low", _limit(mem["reservation"]))
        pids = resources.get("pids") or {}
        if pids.get("limit") is not None:
            self._set("pids.max", "max" if pids["limit"] <= 0 else pids["limit"])
        blkio = resources.get("blockIO") or {}
        if blkio.get("weight"):
            self._set("io.weight", f"default {blkio_weight_to_io(blkio['weight'])}")
        for hp in resources.get("hugepageLimits") or []:
            self._set(f"hugetlb.{hp['pageSize']}.max", hp["limit"])
        if resources.get("devices"):
            # NOTE: v2 device control needs an eBPF program (a later issue); no silent success.
            log.warning("cgroup v2 device rules are not enforced yet")
        for key, value in (resources.get("unified") or {}).items():
            if "/" in key or key.startswith("."):
                raise ValueError(f"invalid unified key {key!r}")
            self._set(key, value)

    def freezer_state(self) -> str | None:
        return freezer.v2_state(self._dir)

    def freeze(self) -> None:
        freezer.v2_freeze(self._dir, self._write)

    def thaw(self) -> None:
        if os.path.exists(os.path.join(self._dir, "cgroup.freeze")):
            freezer.v2_thaw(self._dir, self._write)

    def add(self, pid: int) -> None:
        self._write(os.path.join(self._dir, "cgroup.procs"), str(pid))

    def pids(self) -> list[int]:
        return fs.read_pids(os.path.join(self._dir, "cgroup.procs"))

    def stats(self) -> CgroupStats:
        from .stats import dir_reader, parse_v2

        try:
            names = os.listdir(self._dir)
        except OSError:
            names = []
        return parse_v2(dir_reader(self._dir), names)

    def destroy(self) -> None:
        fs.rmdir(self._dir)
