"""Benchmark: create + start + wait + delete of a `true` container, through each OCI runtime's
command line, median over N runs, all runtimes in the same run (so only ratios matter).

Then memory, in a few separate runs (not timed): the peak RSS of each command, by GNU time
(`/usr/bin/time -f %M`, where installed: a Python parent would lend the child its own peak, as
fork and exec keep it), and the RSS and PSS of the created init while it waits for `start`.

    python -m bench.oci_lifecycle [--runs 50] [--runtime NAME=COMMAND ...]

By default it compares the in-tree executor (`cri-oci`: the compiled front end of
cri/oci/front/, which hands create to this interpreter) with runc and crun where they are
installed. The rootfs is Debian's static busybox.
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

from bench.memory import smaps_rollup_kib

PR_SET_CHILD_SUBREAPER = 36
REPO = Path(__file__).resolve().parents[1]


def in_tree_command() -> list[str]:
    # The compiled front end install.sh puts on PATH as `cri-oci`, from this checkout (built by
    # `pip install -e .`, or here, with this interpreter for what it hands to Python).
    from cri.oci.front import installed_binary

    return [str(installed_binary())]


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
    # one cgroup for all the runs of this process: another bench running meanwhile must not
    # remove it (delete) between a create's mkdir and its init joining it
    spec["linux"]["cgroupsPath"] = f"/cri-bench-{os.getpid()}"
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def one_run(command: list[str], root: Path, bundle: Path, n: int) -> tuple[float, ...]:
    """Seconds: the whole lifecycle, then create, start and delete."""
    cid = f"bench-{os.getpid()}-{n}"
    pid_file = root / f"{cid}.pid"
    started = time.perf_counter()
    subprocess.run([*command, "--root", str(root), "create", "--bundle", str(bundle),
                    "--pid-file", str(pid_file), cid], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    created = time.perf_counter()
    subprocess.run([*command, "--root", str(root), "start", cid], check=True)
    run = time.perf_counter()
    pid = int(pid_file.read_text())
    # We are the subreaper: the detached init is reparented to us, so we can wait for it.
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        while os.path.exists(f"/proc/{pid}"):
            time.sleep(0.0005)
    stopped = time.perf_counter()
    subprocess.run([*command, "--root", str(root), "delete", cid], check=True)
    ended = time.perf_counter()
    pid_file.unlink(missing_ok=True)
    return ended - started, created - started, run - created, ended - stopped


def _peak_rss_kib(command: list[str]) -> int:
    """Peak RSS of one run of `command`, by GNU time (into a file: a created init keeps the
    command's stdio open, so a pipe would not see EOF)."""
    with tempfile.NamedTemporaryFile("r", prefix="cri-bench-rss-") as out:
        subprocess.run(["/usr/bin/time", "-o", out.name, "-f", "%M", *command], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        return int(out.read().strip().splitlines()[-1])


def _rss_pss_kib(pid: int) -> tuple[int, int]:
    values = smaps_rollup_kib(pid)
    return values["Rss"], values["Pss"]


def memory_run(command: list[str], root: Path, bundle: Path, n: int) -> dict[str, int]:
    """KiB: peak RSS of create, start and delete; RSS and PSS of the created init."""
    cid = f"bench-mem-{os.getpid()}-{n}"
    pid_file = root / f"{cid}.pid"
    base = [*command, "--root", str(root)]
    result = {"create": _peak_rss_kib([*base, "create", "--bundle", str(bundle),
                                       "--pid-file", str(pid_file), cid])}
    pid = int(pid_file.read_text())
    result["init_rss"], result["init_pss"] = _rss_pss_kib(pid)
    result["start"] = _peak_rss_kib([*base, "start", cid])
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        while os.path.exists(f"/proc/{pid}"):
            time.sleep(0.0005)
    result["delete"] = _peak_rss_kib([*base, "delete", cid])
    pid_file.unlink(missing_ok=True)
    return result


def parse_arguments(doc: str) -> tuple[int, dict[str, list[str]]]:
    """--runs and --runtime NAME=COMMAND (default: cri-oci, and runc and crun where installed),
    as every bench here takes them."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
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
            found = shutil.which(name)
            if found:
                runtimes[name] = [found]
    return args.runs, runtimes


def print_ratios(medians: dict[str, float]) -> None:
    if "cri-oci" in medians:
        for name, median in medians.items():
            if name != "cri-oci":
                print(f"cri-oci / {name}: {medians['cri-oci'] / median:.2f}")


def main() -> int:
    runs_wanted, runtimes = parse_arguments(__doc__ or "")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    results: dict[str, float] = {}
    memory: dict[str, list[dict[str, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="cri-bench-") as tmp:
        bundle = make_bundle(Path(tmp))
        roots: dict[str, Path] = {}
        for name, command in runtimes.items():
            roots[name] = Path(tmp) / f"root-{name}"
            roots[name].mkdir()
            try:
                one_run(command, roots[name], bundle, -1)  # warm caches
            except subprocess.CalledProcessError as exc:
                print(f"{name:10s} cannot run here: {exc}", flush=True)
                del roots[name]
        # Interleaved, run by run: a burst of noise on the host then costs every runtime alike,
        # and only the ratios are meant to be compared.
        runs: dict[str, list[tuple[float, ...]]] = {name: [] for name in roots}
        for i in range(runs_wanted):
            for name, root in roots.items():
                runs[name].append(one_run(runtimes[name], root, bundle, i))
        for name, samples in runs.items():
            times = [r[0] for r in samples]
            results[name] = statistics.median(times) * 1000
            create, start, delete = (
                statistics.median(r[i] for r in samples) * 1000 for i in (1, 2, 3)
            )
            print(f"{name:10s} median {results[name]:7.1f} ms   "
                  f"min {min(times) * 1000:6.1f}   max {max(times) * 1000:6.1f}   "
                  f"(create {create:.1f}, start {start:.1f}, delete {delete:.1f})", flush=True)
            if os.access("/usr/bin/time", os.X_OK):
                memory[name] = [memory_run(runtimes[name], roots[name], bundle, i)
                                for i in range(3)]
    print_ratios(results)
    for name, measured in memory.items():
        mib = {key: statistics.median(r[key] for r in measured) / 1024 for key in measured[0]}
        print(f"{name:10s} peak RSS MiB: create {mib['create']:.1f}, start {mib['start']:.1f}, "
              f"delete {mib['delete']:.1f}; created init: RSS {mib['init_rss']:.1f}, "
              f"PSS {mib['init_pss']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
