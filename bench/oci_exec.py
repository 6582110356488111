"""Benchmark: `exec ID /bin/true` into a running container (what every kubelet exec probe
costs), through each OCI runtime's command line, median over N runs, the runtimes interleaved
run by run in the same process (so only ratios matter).

    python -m bench.oci_exec [--runs 50] [--runtime NAME=COMMAND ...]

Defaults as bench.oci_lifecycle: the in-tree executor's `cri-oci` against runc and crun where
they are installed and can run here. The container is Debian's static busybox running `sleep`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.oci_lifecycle import make_bundle, parse_arguments, print_ratios


def sleeping_bundle(base: Path, name: str) -> Path:
    """The lifecycle bench's bundle, running `sleep`, in a cgroup of its own per runtime."""
    bundle = make_bundle(base / name)
    rootfs = bundle / "rootfs" / "bin"
    (rootfs / "sleep").hardlink_to(rootfs / "busybox")
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = ["/bin/sleep", "1000"]
    spec["linux"]["cgroupsPath"] += f"-{name}"
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def start(command: list[str], root: Path, bundle: Path, cid: str) -> None:
    subprocess.run([*command, "--root", str(root), "create", "--bundle", str(bundle), cid],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    subprocess.run([*command, "--root", str(root), "start", cid], check=True)


def one_exec(command: list[str], root: Path, cid: str) -> float:
    started = time.perf_counter()
    subprocess.run([*command, "--root", str(root), "exec", cid, "/bin/true"], check=True,
                   stdin=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    runs_wanted, runtimes = parse_arguments(__doc__ or "")
    with tempfile.TemporaryDirectory(prefix="cri-bench-exec-") as tmp:
        running: dict[str, Path] = {}
        cid = "bench-exec"
        try:
            for name, command in runtimes.items():
                root = Path(tmp) / f"root-{name}"
                try:
                    start(command, root, sleeping_bundle(Path(tmp), name), cid)
                    one_exec(command, root, cid)  # warm caches
                except subprocess.CalledProcessError as exc:
                    print(f"{name:10s} cannot run here: {exc}", flush=True)
                    continue
                running[name] = root
            times: dict[str, list[float]] = {name: [] for name in running}
            for _ in range(runs_wanted):
                for name, root in running.items():
                    times[name].append(one_exec(runtimes[name], root, cid))
        finally:
            for name, root in running.items():
                subprocess.run([*runtimes[name], "--root", str(root), "delete", "--force", cid],
                               check=False)
    medians = {name: statistics.median(samples) * 1000 for name, samples in times.items()}
    for name, samples in times.items():
        print(f"{name:10s} exec median {medians[name]:6.1f} ms   "
              f"min {min(samples) * 1000:6.1f}   max {max(samples) * 1000:6.1f}")
    print_ratios(medians)
    return 0


if __name__ == "__main__":
    sys.exit(main())
