"""What a cgroup has used: the counters the kernel keeps, read the same way on v1 and v2.

The parsers take a `Reader` (a file name in the cgroup -> its text, or None when the file is
absent), so they run on real file layouts in a temporary directory as well as on /sys/fs/cgroup.
Nothing here interprets the numbers (working set, rates, what kubelet wants): that is
`cri.stats`'s job. A counter the host does not keep is None, never a made-up 0.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Reader = Callable[[str], "str | None"]

# v1 reports "no limit" as the largest page-aligned signed 64-bit value.
_V1_UNLIMITED = 1 << 62


@dataclass(frozen=True, slots=True)
class PsiLine:
    avg10: float
    avg60: float
    avg300: float
    total_us: int


@dataclass(frozen=True, slots=True)
class Pressure:
    some: PsiLine | None
    full: PsiLine | None


@dataclass(frozen=True, slots=True)
class BlkioEntry:
    major: int
    minor: int
    operation: str  # "Read", "Write", ... as cAdvisor names them
    bytes: int
    ios: int


@dataclass(frozen=True, slots=True)
class CgroupStats:
    cpu_usage_ns: int | None = None
    cpu_user_ns: int | None = None
    cpu_system_ns: int | None = None
    cpu_periods: int | None = None
    cpu_throttled_periods: int | None = None
    cpu_throttled_ns: int | None = None
    memory_usage: int | None = None
    memory_max_usage: int | None = None
    memory_limit: int | None = None  # None: unlimited
    memory_rss: int | None = None
    memory_cache: int | None = None
    memory_mapped_file: int | None = None
    memory_active_file: int | None = None
    memory_inactive_file: int | None = None
    memory_kernel: int | None = None
    page_faults: int | None = None
    major_page_faults: int | None = None
    memory_failcnt: int | None = None
    oom_events: int | None = None
    swap_usage: int | None = None  # None: swap is not accounted
    swap_limit: int | None = None  # None: unlimited (or not accounted)
    pids_current: int | None = None
    pids_limit: int | None = None  # None: unlimited
    hugetlb: Mapping[str, tuple[int, int | None]] = field(default_factory=dict)
    blkio: tuple[BlkioEntry, ...] = ()
    pressure: Mapping[str, Pressure] = field(default_factory=dict)  # "cpu", "memory", "io"


def dir_reader(directory: str) -> Reader:
    def read(name: str) -> str | None:
        try:
            with open(os.path.join(directory, name)) as f:
                return f.read()
        except OSError:
            return None

    return read


def keyed(text: str | None) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, memory.events) as a dict."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def parse_pressure(text: str | None) -> Pressure | None:
    """`some avg10=0.00 avg60=0.00 avg300=0.00 total=0` (and a `full` line)."""
    if not text:
        return None
    lines: dict[str, PsiLine] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        values = dict(part.split("=", 1) for part in rest.split() if "=" in part)
        try:
            lines[kind] = PsiLine(float(values["avg10"]), float(values["avg60"]),
                                  float(values["avg300"]), int(values["total"]))
        except (KeyError, ValueError):
            continue
    if not lines:
        return None
    return Pressure(some=lines.get("some"), full=lines.get("full"))


def _pressures(read: Reader) -> dict[str, Pressure]:
    out = {}
    for resource in ("cpu", "memory", "io"):
        pressure = parse_pressure(read(f"{resource}.pressure"))
        if pressure is not None:
            out[resource] = pressure
    return out


def _hugepage_sizes(names: list[str], prefix: str = "hugetlb.", suffix: str = ".max") -> list[str]:
    return sorted({n[len(prefix):].split(".", 1)[0] for n in names
                   if n.startswith(prefix) and n.endswith(suffix)})


# --- cgroup v2 ---------------------------------------------------------------------------------

def parse_v2(read: Reader, names: list[str] | None = None) -> CgroupStats:
    """One unified cgroup directory. `names` (its file names) finds the hugepage sizes."""
    cpu = keyed(read("cpu.stat"))
    mem = keyed(read("memory.stat"))
    events = keyed(read("memory.events"))
    usage = _int(read("memory.current"))
    kernel = mem.get("kernel")
    if kernel is None and "slab" in mem:
        kernel = mem.get("slab", 0) + mem.get("kernel_stack", 0) + mem.get("sock", 0)
    hugetlb: dict[str, tuple[int, int | None]] = {}
    for size in _hugepage_sizes(names or []):
        current = _int(read(f"hugetlb.{size}.current"))
        if current is not None:
            hugetlb[size] = (current, None)
    return CgroupStats(
        cpu_usage_ns=_us(cpu.get("usage_usec")),
        cpu_user_ns=_us(cpu.get("user_usec")),
        cpu_system_ns=_us(cpu.get("system_usec")),
        cpu_periods=cpu.get("nr_periods"),
        cpu_throttled_periods=cpu.get("nr_throttled"),
        cpu_throttled_ns=_us(cpu.get("throttled_usec")),
        memory_usage=usage,
        memory_max_usage=_int(read("memory.peak")),
        memory_limit=_int(read("memory.max")),
        memory_rss=mem.get("anon"),
        memory_cache=mem.get("file"),
        memory_mapped_file=mem.get("file_mapped"),
        memory_active_file=mem.get("active_file"),
        memory_inactive_file=mem.get("inactive_file"),
        memory_kernel=kernel,
        page_faults=mem.get("pgfault"),
        major_page_faults=mem.get("pgmajfault"),
        memory_failcnt=events.get("max"),
        oom_events=events.get("oom_kill"),
        swap_usage=_int(read("memory.swap.current")),
        swap_limit=_int(read("memory.swap.max")),
        pids_current=_int(read("pids.current")),
        pids_limit=_int(read("pids.max")),
        hugetlb=hugetlb,
        blkio=parse_io_stat(read("io.stat")),
        pressure=_pressures(read),
    )


def _us(value: int | None) -> int | None:
    return None if value is None else value * 1000


def parse_io_stat(text: str | None) -> tuple[BlkioEntry, ...]:
    """v2 io.stat: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0` per device."""
    out = []
    for line in (text or "").splitlines():
        dev, *pairs = line.split()
        try:
            major, minor = (int(x) for x in dev.split(":"))
        except ValueError:
            continue
        values = {k: int(v) for k, v in (p.split("=", 1) for p in pairs if "=" in p)}
        out.append(BlkioEntry(major, minor, "Read", values.get("rbytes", 0), values.get("rios", 0)))
        out.append(BlkioEntry(major, minor, "Write", values.get("wbytes", 0),
                              values.get("wios", 0)))
    return tuple(out)


# --- cgroup v1 ---------------------------------------------------------------------------------

def parse_v1(readers: Mapping[str, Reader], names: Mapping[str, list[str]] | None = None,
             unified: Reader | None = None) -> CgroupStats:
    """One directory per controller: `readers` maps a controller ("cpuacct", "memory", ...) to a
    reader of the container's directory in the hierarchy that carries it. `unified` reads the
    container's directory in a hybrid host's v2 hierarchy, where PSI lives."""
    def reader(controller: str) -> Reader:
        return readers.get(controller) or (lambda name: None)

    cpuacct, cpu, memory = reader("cpuacct"), reader("cpu"), reader("memory")
    pids, hugetlb_r, blkio_r = reader("pids"), reader("hugetlb"), reader("blkio")
    throttling = keyed(cpu("cpu.stat"))
    user_system = keyed(cpuacct("cpuacct.stat"))
    tick_ns = 1_000_000_000 // (os.sysconf("SC_CLK_TCK") or 100)
    mem = keyed(memory("memory.stat"))
    limit = _int(memory("memory.limit_in_bytes"))
    if limit is not None and limit >= _V1_UNLIMITED:
        limit = None
    usage = _int(memory("memory.usage_in_bytes"))
    memsw_usage = _int(memory("memory.memsw.usage_in_bytes"))
    memsw_limit = _int(memory("memory.memsw.limit_in_bytes"))
    swap_usage = swap_limit = None
    if memsw_usage is not None and usage is not None:
        swap_usage = max(memsw_usage - usage, 0)
        if memsw_limit is not None and memsw_limit < _V1_UNLIMITED and limit is not None:
            swap_limit = max(memsw_limit - limit, 0)
    pids_limit = _int(pids("pids.max"))
    hugetlb: dict[str, tuple[int, int | None]] = {}
    for size in _hugepage_sizes((names or {}).get("hugetlb", []), suffix=".usage_in_bytes"):
        current = _int(hugetlb_r(f"hugetlb.{size}.usage_in_bytes"))
        if current is not None:
            hugetlb[size] = (current, _int(hugetlb_r(f"hugetlb.{size}.max_usage_in_bytes")))
    return CgroupStats(
        cpu_usage_ns=_int(cpuacct("cpuacct.usage")),
        cpu_user_ns=_ticks(user_system.get("user"), tick_ns),
        cpu_system_ns=_ticks(user_system.get("system"), tick_ns),
        cpu_periods=throttling.get("nr_periods"),
        cpu_throttled_periods=throttling.get("nr_throttled"),
        cpu_throttled_ns=throttling.get("throttled_time"),
        memory_usage=usage,
        memory_max_usage=_int(memory("memory.max_usage_in_bytes")),
        memory_limit=limit,
        memory_rss=mem.get("total_rss"),
        memory_cache=mem.get("total_cache"),
        memory_mapped_file=mem.get("total_mapped_file"),
        memory_active_file=mem.get("total_active_file"),
        memory_inactive_file=mem.get("total_inactive_file"),
        memory_kernel=_int(memory("memory.kmem.usage_in_bytes")),
        page_faults=mem.get("total_pgfault"),
        major_page_faults=mem.get("total_pgmajfault"),
        memory_failcnt=_int(memory("memory.failcnt")),
        oom_events=keyed(memory("memory.oom_control")).get("oom_kill"),
        swap_usage=swap_usage,
        swap_limit=swap_limit,
        pids_current=_int(pids("pids.current")),
        pids_limit=pids_limit,
        hugetlb=hugetlb,
        blkio=parse_blkio_v1(blkio_r("blkio.throttle.io_service_bytes_recursive"),
                             blkio_r("blkio.throttle.io_serviced_recursive")),
        pressure=_pressures(unified) if unified is not None else {},
    )


def _ticks(value: int | None, tick_ns: int) -> int | None:
    return None if value is None else value * tick_ns


def parse_blkio_v1(service_bytes: str | None, serviced: str | None) -> tuple[BlkioEntry, ...]:
    """`8:0 Read 4096` lines (and a `Total` line) of the throttle files."""
    def table(text: str | None) -> dict[tuple[int, int, str], int]:
        out = {}
        for line in (text or "").splitlines():
            parts = line.split()
            if len(parts) != 3:
                continue
            try:
                major, minor = (int(x) for x in parts[0].split(":"))
                out[(major, minor, parts[1])] = int(parts[2])
            except ValueError:
                continue
        return out

    by_bytes, by_ios = table(service_bytes), table(serviced)
    return tuple(BlkioEntry(major, minor, op, value, by_ios.get((major, minor, op), 0))
                 for (major, minor, op), value in sorted(by_bytes.items()))
