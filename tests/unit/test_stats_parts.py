"""The pure parts of cri.stats: rates, network tables, layer walks, sums, Stream* pages."""

from __future__ import annotations

from pathlib import Path

from cri.api.runtime.v1 import api_pb2 as v1
from cri.oci.cgroups.stats import CgroupStats
from cri.server.pages import pages
from cri.stats.cpu_rate import UsageRates
from cri.stats.network import default_interface, parse_net_dev, pod_interfaces
from cri.stats.service import combine, working_set
from cri.stats.writable_layer import LayerUsageCache, measure

NET_DEV = "\n".join((
    "Inter-|   Receive                                                |  Transmit",
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed",
    "    lo:     840      10    0    0    0     0          0         0      840      10    0 "
    "   0    0     0       0          0",
    "  eth0: 1234567    8901    2    3    0     0          0         5   765432    4321    1 "
    "   4    0     0       0          0",
)) + "\n"

def test_net_dev_table() -> None:
    lo, eth0 = parse_net_dev(NET_DEV)
    assert (lo.name, lo.rx_bytes, lo.tx_packets) == ("lo", 840, 10)
    assert (eth0.rx_bytes, eth0.rx_packets, eth0.rx_errors, eth0.rx_dropped) == (
        1234567, 8901, 2, 3)
    assert (eth0.tx_bytes, eth0.tx_packets, eth0.tx_errors, eth0.tx_dropped) == (
        765432, 4321, 1, 4)
    assert [i.name for i in pod_interfaces([lo, eth0])] == ["eth0"]
    assert default_interface(pod_interfaces([lo, eth0])) == eth0
    assert default_interface([]) is None


def test_rates_need_a_window() -> None:
    rates = UsageRates(min_window_ns=1_000_000_000)
    assert rates.rate("c", 0, 0) is None  # first sample
    assert rates.rate("c", 10_000_000, 10_000_000) is None  # too soon, and nothing computed yet
    assert rates.rate("c", 500_000_000, 1_000_000_000) == 500_000_000  # half a core
    assert rates.rate("c", 600_000_000, 1_100_000_000) == 500_000_000  # too soon: last rate
    assert rates.rate("c", 2_500_000_000, 2_000_000_000) == 2_000_000_000
    assert rates.rate("c", 1, 3_000_000_000) is None  # a counter that went back is a new one
    rates.retain([])
    assert rates.rate("c", 5, 4_000_000_000) is None


def test_measure_counts_blocks_and_inodes_once(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x" * 100_000)
    (tmp_path / "link").hardlink_to(tmp_path / "d" / "f")
    (tmp_path / "sym").symlink_to("d/f")
    used, inodes = measure(str(tmp_path))
    assert inodes == 3  # d, f (twice linked), sym
    assert 100_000 <= used < 200_000


def test_layer_cache_walks_once_per_ttl(tmp_path: Path) -> None:
    cache = LayerUsageCache(ttl_ns=60 * 1_000_000_000)
    first = cache.usage("c", str(tmp_path))
    (tmp_path / "new").write_bytes(b"x" * 100_000)
    assert cache.usage("c", str(tmp_path)) == first
    cache.retain([])
    assert cache.usage("c", str(tmp_path)).used_bytes > first.used_bytes


def test_combine_sums_and_forgets_limits() -> None:
    a = CgroupStats(cpu_usage_ns=1, memory_usage=10, memory_limit=100, pids_current=1)
    b = CgroupStats(cpu_usage_ns=2, memory_usage=20, memory_limit=100)
    total = combine([a, b])
    assert (total.cpu_usage_ns, total.memory_usage, total.pids_current) == (3, 30, 1)
    assert total.memory_limit is None and total.swap_usage is None
    assert combine([]) == CgroupStats()


def test_working_set_is_usage_less_inactive_file() -> None:
    assert working_set(CgroupStats(memory_usage=100, memory_inactive_file=30)) == 70
    assert working_set(CgroupStats(memory_usage=10, memory_inactive_file=30)) == 0
    assert working_set(CgroupStats()) is None


def test_pages_are_bounded_and_never_empty() -> None:
    items = [v1.Container(id=str(i)) for i in range(250)]
    sent = list(pages(items, v1.StreamContainersResponse, "containers"))
    assert [len(p.containers) for p in sent] == [100, 100, 50]
    assert [c.id for p in sent for c in p.containers] == [str(i) for i in range(250)]
    assert [len(p.containers) for p in pages([], v1.StreamContainersResponse,
                                             "containers")] == [0]
    assert len(list(pages(items[:100], v1.StreamContainersResponse, "containers"))) == 1
