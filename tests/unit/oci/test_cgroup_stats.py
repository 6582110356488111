"""The cgroup managers' stats() on real file layouts: a unified (v2) directory and v1 hierarchies
as the kernel lays them out, with the files' text as kernel 6.x writes it."""

from __future__ import annotations

import os
from pathlib import Path

from cri.oci.cgroups.detect import Hierarchy
from cri.oci.cgroups.stats import BlkioEntry, CgroupStats, parse_pressure, parse_v2
from cri.oci.cgroups.v1 import V1Manager
from cri.oci.cgroups.v2 import V2Manager

V2_FILES = {
    "cgroup.controllers": "cpuset cpu io memory hugetlb pids\n",
    "cpu.stat": (
        "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnice_usec 0\n"
        "core_sched.force_idle_usec 0\nnr_periods 40\nnr_throttled 3\nthrottled_usec 120000\n"
        "nr_bursts 0\nburst_usec 0\n"),
    "memory.current": "157286400\n",
    "memory.peak": "209715200\n",
    "memory.max": "max\n",
    "memory.stat": (
        "anon 104857600\nfile 52428800\nkernel 3145728\nkernel_stack 65536\npagetables 131072\n"
        "sec_pagetables 0\npercpu 0\nsock 0\nvmalloc 0\nshmem 0\nzswap 0\nzswapped 0\n"
        "file_mapped 4194304\nfile_dirty 0\nfile_writeback 0\nswapcached 0\nanon_thp 0\n"
        "file_thp 0\nshmem_thp 0\ninactive_anon 0\nactive_anon 104857600\n"
        "inactive_file 31457280\nactive_file 20971520\nunevictable 0\nslab_reclaimable 0\n"
        "slab_unreclaimable 0\nslab 0\nworkingset_refault_anon 0\npgscan 0\npgsteal 0\n"
        "pgfault 26000\npgmajfault 12\npgrefill 0\npgactivate 0\npgdeactivate 0\n"),
    "memory.events": "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n",
    "memory.swap.current": "1048576\n",
    "memory.swap.max": "max\n",
    "pids.current": "4\n",
    "pids.max": "1024\n",
    "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
    "cpu.pressure": ("some avg10=1.50 avg60=0.75 avg300=0.10 total=123456\n"
                     "full avg10=0.00 avg60=0.00 avg300=0.00 total=2345\n"),
    "memory.pressure": ("some avg10=0.00 avg60=0.00 avg300=0.00 total=10\n"
                        "full avg10=0.00 avg60=0.00 avg300=0.00 total=5\n"),
    "io.pressure": ("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"),
    "hugetlb.2MB.current": "4194304\n",
    "hugetlb.2MB.max": "max\n",
    "hugetlb.2MB.events": "max 0\n",
    "hugetlb.1GB.current": "0\n",
    "hugetlb.1GB.max": "max\n",
}


def write_tree(root: Path, files: dict[str, str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)


def test_v2_manager_reads_every_counter(tmp_path: Path) -> None:
    mount = tmp_path / "cgroup"
    write_tree(mount, {"cgroup.controllers": V2_FILES["cgroup.controllers"]})
    write_tree(mount / "pod", {"cgroup.controllers": V2_FILES["cgroup.controllers"]})
    write_tree(mount / "pod" / "ctr", V2_FILES)
    stats = V2Manager(str(mount), "/pod/ctr").stats()
    assert stats.cpu_usage_ns == 2_500_000_000
    assert (stats.cpu_user_ns, stats.cpu_system_ns) == (2_000_000_000, 500_000_000)
    assert (stats.cpu_periods, stats.cpu_throttled_periods, stats.cpu_throttled_ns) == (
        40, 3, 120_000_000)
    assert stats.memory_usage == 157286400 and stats.memory_max_usage == 209715200
    assert stats.memory_limit is None  # "max"
    assert (stats.memory_rss, stats.memory_cache, stats.memory_mapped_file) == (
        104857600, 52428800, 4194304)
    assert stats.memory_inactive_file == 31457280 and stats.memory_kernel == 3145728
    assert (stats.page_faults, stats.major_page_faults) == (26000, 12)
    assert (stats.memory_failcnt, stats.oom_events) == (7, 1)
    assert (stats.swap_usage, stats.swap_limit) == (1048576, None)
    assert (stats.pids_current, stats.pids_limit) == (4, 1024)
    assert stats.blkio == (BlkioEntry(8, 0, "Read", 4096, 1), BlkioEntry(8, 0, "Write", 8192, 2))
    assert stats.hugetlb == {"1GB": (0, None), "2MB": (4194304, None)}
    cpu = stats.pressure["cpu"]
    assert cpu.some is not None and cpu.some.total_us == 123456 and cpu.some.avg10 == 1.5
    assert cpu.full is not None and cpu.full.total_us == 2345
    assert set(stats.pressure) == {"cpu", "memory", "io"}


def test_v2_from_recorded_dir_finds_the_same_files(tmp_path: Path) -> None:
    mount = tmp_path / "cgroup"
    write_tree(mount, {"cgroup.controllers": "cpu memory\n"})
    write_tree(mount / "a" / "b", V2_FILES)
    stats = V2Manager.from_dir(str(mount / "a" / "b")).stats()
    assert stats.memory_usage == 157286400


def test_v2_without_controllers_reports_unknown_not_zero(tmp_path: Path) -> None:
    # A cgroup whose parent enables no controllers has only the core files.
    write_tree(tmp_path / "c", {"cgroup.controllers": "", "cgroup.procs": "1\n",
                                "cpu.stat": "usage_usec 5\nuser_usec 3\nsystem_usec 2\n"})
    stats = V2Manager(str(tmp_path), "/c").stats()
    assert stats.cpu_usage_ns == 5000
    assert stats.memory_usage is None and stats.pids_current is None
    assert stats.cpu_periods is None and stats.pressure == {}


def test_v1_hierarchies_as_mounted_here(tmp_path: Path) -> None:
    """cpu and cpuacct mounted apart (as on this machine), memory with swap accounting."""
    hierarchies = []
    files = {
        "cpu": {"cpu.stat": "nr_periods 10\nnr_throttled 2\nthrottled_time 5000000\n"
                            "nr_bursts 0\nburst_time 0\n", "cpu.shares": "1024\n"},
        "cpuacct": {"cpuacct.usage": "987654321\n", "cpuacct.stat": "user 50\nsystem 25\n"},
        "memory": {
            "memory.usage_in_bytes": "73400320\n",
            "memory.max_usage_in_bytes": "80000000\n",
            "memory.limit_in_bytes": "9223372036854771712\n",
            "memory.memsw.usage_in_bytes": "74448896\n",
            "memory.memsw.limit_in_bytes": "9223372036854771712\n",
            "memory.failcnt": "0\n",
            "memory.kmem.usage_in_bytes": "1048576\n",
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            "memory.stat": (
                "cache 20971520\nrss 52428800\nmapped_file 0\npgfault 100\npgmajfault 1\n"
                "inactive_file 10485760\nactive_file 10485760\n"
                "hierarchical_memory_limit 9223372036854771712\n"
                "total_cache 20971520\ntotal_rss 52428800\ntotal_mapped_file 2097152\n"
                "total_pgfault 100\ntotal_pgmajfault 1\ntotal_inactive_file 10485760\n"
                "total_active_file 10485760\n"),
        },
        "pids": {"pids.current": "3\n", "pids.max": "max\n"},
        "blkio": {
            "blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 0\n"
                                                         "8:0 Sync 0\nTotal 4096\n",
            "blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 0\nTotal 1\n",
        },
    }
    for name, content in files.items():
        mount = tmp_path / name
        write_tree(mount / "cri" / "ctr", content)
        hierarchies.append(Hierarchy(name, str(mount), frozenset({name})))
    unified = tmp_path / "unified"
    write_tree(unified / "cri" / "ctr", {"cpu.pressure": V2_FILES["cpu.pressure"]})
    stats = V1Manager(hierarchies, "/cri/ctr", unified=str(unified)).stats()
    tick_ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    assert stats.cpu_usage_ns == 987654321
    assert (stats.cpu_user_ns, stats.cpu_system_ns) == (50 * tick_ns, 25 * tick_ns)
    assert (stats.cpu_periods, stats.cpu_throttled_periods, stats.cpu_throttled_ns) == (
        10, 2, 5000000)
    assert stats.memory_limit is None  # the kernel's "unlimited"
    assert stats.memory_usage == 73400320 and stats.memory_rss == 52428800
    assert stats.memory_inactive_file == 10485760 and stats.memory_mapped_file == 2097152
    assert (stats.swap_usage, stats.swap_limit) == (74448896 - 73400320, None)
    assert stats.oom_events == 2 and stats.memory_kernel == 1048576
    assert (stats.pids_current, stats.pids_limit) == (3, None)
    assert stats.blkio == (BlkioEntry(8, 0, "Read", 4096, 1), BlkioEntry(8, 0, "Sync", 0, 0),
                           BlkioEntry(8, 0, "Write", 0, 0))
    assert set(stats.pressure) == {"cpu"}  # from the hybrid host's v2 half


def test_v1_memory_limit_and_swap(tmp_path: Path) -> None:
    mount = tmp_path / "memory"
    write_tree(mount / "c", {"memory.usage_in_bytes": "1000\n",
                             "memory.limit_in_bytes": "67108864\n",
                             "memory.memsw.usage_in_bytes": "1500\n",
                             "memory.memsw.limit_in_bytes": "134217728\n"})
    stats = V1Manager([Hierarchy("memory", str(mount), frozenset({"memory"}))], "/c").stats()
    assert stats.memory_limit == 67108864
    assert (stats.swap_usage, stats.swap_limit) == (500, 134217728 - 67108864)


def test_a_cgroup_that_is_gone_reads_as_unknown(tmp_path: Path) -> None:
    assert V2Manager(str(tmp_path), "/gone").stats() == CgroupStats()


def test_pressure_lines() -> None:
    assert parse_pressure("") is None
    pressure = parse_pressure("some avg10=0.10 avg60=0.20 avg300=0.30 total=42\n")
    assert pressure is not None and pressure.full is None
    assert pressure.some is not None and (pressure.some.avg300, pressure.some.total_us) == (
        0.3, 42)


def test_parse_v2_with_a_dict_reader() -> None:
    stats = parse_v2(lambda name: {"memory.current": "10\n"}.get(name))
    assert stats.memory_usage == 10 and stats.cpu_usage_ns is None
