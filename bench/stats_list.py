"""Benchmark: ListContainerStats and ListPodSandboxStats (what kubelet's CRI stats provider asks
every few seconds) against a daemon running 10, 50 and 100 containers, median over N calls each.
The cost per container must stay flat as the count grows.

    python -m bench.stats_list [--runs 20] [--counts 10,50,100] [--per-pod 2] [--handlers oci,runc]

Each handler gets its own daemon, run one after the other: the in-tree executor's containers and
runc's are read the same way (their cgroups), so the ratio shows whether anything about how ours
lays out a container (cgroups, the writable layer) makes it dearer to account for.

The daemon runs on a temporary root with the built-in pause image, which also serves as the
containers' image (a process that sleeps), so no registry is needed. ListPodSandboxMetrics
(kubelet's /metrics/cadvisor) is timed too, as the heaviest of the three.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cri.api.runtime.v1 import api_pb2 as v1
from cri.config import BUILTIN_PAUSE_IMAGE
from cri.sandbox.pause import compile_pause
from tests.support.daemon import CriClient, running_daemon


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--counts", default="10,50,100")
    parser.add_argument("--per-pod", type=int, default=2, help="containers per pod")
    parser.add_argument("--handlers", default="oci,runc",
                        help="oci (the in-tree executor), runc, crun")
    return parser.parse_args()


def add_pod(cri: CriClient, containers: int, handler: str) -> None:
    name = f"bench-{secrets.token_hex(3)}"
    config = v1.PodSandboxConfig(metadata=v1.PodSandboxMetadata(
        name=name, namespace="bench", uid=secrets.token_hex(8)))
    sandbox_id = cri.runtime.RunPodSandbox(v1.RunPodSandboxRequest(
        config=config, runtime_handler=handler)).pod_sandbox_id
    for i in range(containers):
        container_id = cri.runtime.CreateContainer(v1.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, sandbox_config=config, config=v1.ContainerConfig(
                metadata=v1.ContainerMetadata(name=f"c{i}"),
                image=v1.ImageSpec(image=BUILTIN_PAUSE_IMAGE)))).container_id
        cri.runtime.StartContainer(v1.StartContainerRequest(container_id=container_id))


def median_ms(call: Callable[[], Any], runs: int) -> float:
    call()  # first call measures every writable layer and seeds the CPU rates
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


COLUMNS = ("ListContainerStats", "ListPodSandboxStats", "ListPodSandboxMetrics")


def measure(pause: Path, handler: str, counts: list[int], args: argparse.Namespace
            ) -> dict[int, list[float]]:
    """Median ms of each of COLUMNS, by container count, for one handler's daemon."""
    runtime = "" if handler == "oci" else handler
    config = f'[runtimes.{runtime}]\nbinary = "{runtime}"\n' if runtime else ""
    figures: dict[int, list[float]] = {}
    with running_daemon(pause, config) as daemon:
        cri = CriClient(daemon.socket)
        rt = cri.runtime
        running = 0
        try:
            for count in counts:
                while running < count:
                    add_pod(cri, min(args.per_pod, count - running), runtime)
                    running += min(args.per_pod, count - running)
                listed = len(rt.ListContainerStats(v1.ListContainerStatsRequest()).stats)
                assert listed == count, (listed, count)
                figures[count] = [
                    median_ms(lambda: rt.ListContainerStats(v1.ListContainerStatsRequest()),
                              args.runs),
                    median_ms(lambda: rt.ListPodSandboxStats(v1.ListPodSandboxStatsRequest()),
                              args.runs),
                    median_ms(lambda: rt.ListPodSandboxMetrics(
                        v1.ListPodSandboxMetricsRequest()), args.runs)]
                cells = [f"{ms:7.1f} ({ms * 1000 / count:5.0f})" for ms in figures[count]]
                print(f"{handler:>5s} {count:10d} {cells[0]:>20s} {cells[1]:>20s} "
                      f"{cells[2]:>22s}", flush=True)
        finally:
            cri.close()
    return figures


def main() -> int:
    args = parse_arguments()
    counts = sorted(int(c) for c in args.counts.split(","))
    handlers = args.handlers.split(",")
    with tempfile.TemporaryDirectory(prefix="cri-bench-stats-") as tmp:
        pause = compile_pause(Path(tmp) / "pause")
        print(f"{'':5s} {'containers':>10s} {COLUMNS[0]:>20s} {COLUMNS[1]:>20s} "
              f"{COLUMNS[2]:>22s}   (median ms; us per container)")
        results = {handler: measure(pause, handler, counts, args) for handler in handlers}
    if len(handlers) > 1:
        base, *others = handlers
        for other in others:
            for count in counts:
                pairs = zip(COLUMNS, results[base][count], results[other][count], strict=True)
                ratios = "  ".join(f"{name} {ours / theirs:4.2f}" for name, ours, theirs in pairs)
                print(f"{base}/{other} at {count}: {ratios}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
