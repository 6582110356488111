"""Benchmark: create + start + wait + delete of a `true` container, through each OCI runtime's
command line, median over N runs, all runtimes in the same run (so only ratios matter).

    python -m bench.oci_lifecycle [--runs 50] [--runtime NAME=COMMAND ...]

By default it compares the in-tree executor (`cri-oci`, run with the same interpreter, no site
packages) with runc and crun where they are installed. The rootfs is Debian's static busybox.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
REPO = Path(__file__).resolve().parents[1]


def in_tree_command() -> list[str]:
    # The launcher `pip install` puts on PATH as `cri-oci` (its first line: `#!python -SE`), run
    # from this checkout: it then imports the checkout's package.
    return [sys.executable, "-SE", str(REPO / "cri" / "oci" / "cri-oci")]


def make_bundle(base: Path) -> Path:
    bundle = base / "bundle"
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    for name in ("proc", "dev", "sys", "tmp", "etc"):
        (rootfs / name).mkdir()
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    os.link(rootfs / "bin" / "busybox", rootfs / "bin" / "true")
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = ["/bin/true"]
    spec["process"]["terminal"] = False
    spec["root"]["readonly"] = True
    spec["linux"]["cgroupsPath"] = "/cri-bench"
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def one_run(command: list[str], root: Path, bundle: Path, n: int) -> float:
    cid = f"bench-{os.getpid()}-{n}"
    pid_file = root / f"{cid}.pid"
    started = time.perf_counter()
    subprocess.run([*command, "--root", str(root), "create", "--bundle", str(bundle),
                    "--pid-file", str(pid_file), cid], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    subprocess.run([*command, "--root", str(root), "start", cid], check=True)
    pid = int(pid_file.read_text())
    # We are the subreaper: the detached init is reparented to us, so we can wait for it.
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        while os.path.exists(f"/proc/{pid}"):
            time.sleep(0.0005)
    subprocess.run([*command, "--root", str(root), "delete", cid], check=True)
    elapsed = time.perf_counter() - started
    pid_file.unlink(missing_ok=True)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--runtime", action="append", default=[],
                        help="NAME=COMMAND (repeatable); default: cri-oci, runc, crun")
    args = parser.parse_args()
    runtimes: dict[str, list[str]] = {}
    for item in args.runtime:
        name, _, command = item.partition("=")
        runtimes[name] = command.split()
    if not runtimes:
        runtimes["cri-oci"] = in_tree_command()
        for name in ("runc", "crun"):
            if shutil.which(name):
                runtimes[name] = [shutil.which(name) or name]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="cri-bench-") as tmp:
        bundle = make_bundle(Path(tmp))
        for name, command in runtimes.items():
            root = Path(tmp) / f"root-{name}"
            root.mkdir()
            try:
                one_run(command, root, bundle, -1)  # warm caches
            except subprocess.CalledProcessError as exc:
                print(f"{name:10s} cannot run here: {exc}", flush=True)
                continue
            # Interleaving would be fairer to noise, but each runtime keeps its own cgroup
            # hierarchy warm this way, as it would on a busy node.
            times = [one_run(command, root, bundle, i) for i in range(args.runs)]
            results[name] = statistics.median(times) * 1000
            print(f"{name:10s} median {results[name]:7.1f} ms   "
                  f"min {min(times) * 1000:6.1f}   max {max(times) * 1000:6.1f}", flush=True)
    if "cri-oci" in results:
        for name, median in results.items():
            if name != "cri-oci":
                print(f"cri-oci / {name}: {results['cri-oci'] / median:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
