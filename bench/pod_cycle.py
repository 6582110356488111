"""Benchmark: the kubelet's path through a CRI runtime, ours against containerd in the same run.

    python -m bench.pod_cycle [--runs 20] [--pods 50] [--crictl PATH]

Both runtimes run at once inside one network namespace the bench makes (a stand-in node, as in
tests/integration/test_networking.py), each with Debian's CNI plugins on its own bridge, pulling
the project's busybox test image (and, for containerd, the project's pause binary as its sandbox
image) from a docker-registry on 127.0.0.1 of the machine. containerd is Debian's (1.6) with
runc, on a temporary root; ours is `python -m cri` with the in-tree executor and its defaults,
run from this source tree with its bytecode compiled first, as `pip install` leaves an installed
package (so a PYTHONDONTWRITEBYTECODE in the environment does not make it compile at start).

Figures, each ours / containerd's as a ratio:
1. the full cycle (RunPodSandbox, CreateContainer, StartContainer, ExecSync `true`,
   StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox), median of `--runs`, with
   the median of each step; runs alternate between the runtimes so both see the same machine.
   With `--crictl` (or crictl on PATH) the same cycle again as crictl commands, run in the
   node's namespace (`crictl exec` streams from the runtime's server on its 127.0.0.1); each
   command then also pays crictl's own start, 20 to 30 ms here, for both runtimes alike.
   After it, the cycle's shared floor: `crictl version` against each runtime (crictl's own
   start and connection, paid once per command) and the CNI chain run alone, without a
   runtime (bench.cni_chain, ADD then DEL); what each cycle spends above that floor; and the
   ratio a runtime that took no time at all would score.
2. ExecSync of `true` in a running container (what a probe costs), median of `--runs`.
3. `--pods` pods (pause + one `sleep` container) started 10 at a time: median and p99 of each
   pod's runp+create+start, failures.
4. With those pods running: the PSS of the runtime's per-container processes (our monitors;
   containerd's shims), per container and per pod; the daemon's RSS at start, with the images
   pulled, and with the pods; and the daemon's own helpers (our shim fork server), which serve
   every pod and so are reported apart from the per-container figures.

BENCH_KEEP=1 keeps the working directory (the daemons' logs); BENCH_LOG_LEVEL=debug makes ours
log each CNI plugin's duration.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench.memory import smaps_rollup_kib
from cri.api.runtime.v1 import api_pb2 as api
from cri.sandbox.pause import compile_pause
from tests.support import node as nodes
from tests.support.daemon import REPO, CriClient, DaemonProcess, remove_everything
from tests.support.leaks import cgroups_under
from tests.support.oci_build import Layer, build_image, busybox_image, push_image
from tests.support.registry import LocalRegistry

CNI_BIN = Path("/usr/lib/cni")
CYCLE_STEPS = ("runp", "create", "start", "exec", "stop", "rm", "stopp", "rmp")
CONCURRENCY = 10


def conflist(name: str, bridge: str, subnet: str, ipam_dir: Path) -> str:
    return json.dumps({
        "cniVersion": "0.4.0", "name": name,
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": True,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(ipam_dir)}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "loopback"},
        ]})


# --- the runtimes -------------------------------------------------------------------------------


@dataclass
class Runtime:
    name: str
    socket: Path
    proc: subprocess.Popen[bytes] | None = None
    cgroup_parent: str = ""  # removed at the end, once empty
    client: CriClient | None = field(default=None, repr=False)

    def connect(self) -> CriClient:
        self.client = CriClient(self.socket)
        return self.client

    @property
    def daemon_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid  # nsenter execs the daemon: the same pid


def start_ours(work: Path, node: str, pause: Path) -> Runtime:
    conf_dir, ipam = work / "net.d", work / "ipam"
    conf_dir.mkdir(parents=True)
    (conf_dir / "10-bench.conflist").write_text(conflist("bench-ours", "bench-ours0",
                                                         "10.81.0.0/16", ipam))
    config = work / "config.toml"
    config.write_text(f'cni_conf_dir = "{conf_dir}"\ncni_bin_dir = "{CNI_BIN}"\n')
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "cri")], check=True,
                   stdout=subprocess.DEVNULL)
    daemon = DaemonProcess(work, pause, config_file=config, network="cni", node=node,
                           extra_args=["--log-level", os.environ.get("BENCH_LOG_LEVEL", "info")])
    daemon.start()
    return Runtime("ours", daemon.socket, daemon.proc, cgroup_parent=daemon.cgroup_parent)


CONTAINERD_CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{conf_dir}"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{registry}"]
    endpoint = ["http://{registry}"]
"""


def start_containerd(work: Path, node: str, registry: str, pause_image: str) -> Runtime:
    binary = shutil.which("containerd")
    if binary is None:
        sys.exit("containerd is not installed: apt-get install containerd")
    conf_dir, ipam = work / "net.d", work / "ipam"
    conf_dir.mkdir(parents=True)
    (conf_dir / "10-bench.conflist").write_text(conflist("bench-containerd", "bench-ctrd0",
                                                         "10.82.0.0/16", ipam))
    socket = work / "containerd.sock"
    config = work / "config.toml"
    config.write_text(CONTAINERD_CONFIG.format(
        root=work / "root", state=work / "state", socket=socket, pause_image=pause_image,
        cni_bin=CNI_BIN, conf_dir=conf_dir, registry=registry))
    log = (work / "containerd.log").open("ab")
    proc = subprocess.Popen([*nodes.nsenter(node), binary, "--config", str(config)],
                            stdout=log, stderr=log)
    log.close()
    runtime = Runtime("containerd", socket, proc, cgroup_parent="/k8s.io")
    _wait_ready(runtime, work / "containerd.log")
    return runtime


def _wait_ready(runtime: Runtime, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert runtime.proc is not None
        if runtime.proc.poll() is not None:
            sys.exit(f"{runtime.name} exited:\n{log.read_text()[-4000:]}")
        if runtime.socket.exists():
            client = CriClient(runtime.socket)
            try:
                client.runtime.Version(api.VersionRequest(), timeout=2)
                status = client.runtime.Status(api.StatusRequest(), timeout=2).status
                if all(c.status for c in status.conditions):
                    return
            except grpc.RpcError:
                pass
            finally:
                client.close()
        time.sleep(0.1)
    sys.exit(f"{runtime.name} did not become ready:\n{log.read_text()[-4000:]}")


def stop_runtime(runtime: Runtime) -> None:
    if runtime.client is not None:
        remove_everything(runtime.client)
        runtime.client.close()
    if runtime.proc is not None and runtime.proc.poll() is None:
        runtime.proc.send_signal(signal.SIGTERM)
        try:
            runtime.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            runtime.proc.kill()
            runtime.proc.wait()
    if runtime.cgroup_parent:
        for path in cgroups_under(runtime.cgroup_parent):
            for sub in sorted(Path(path).glob("**/"), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    sub.rmdir()


# --- the workload -------------------------------------------------------------------------------


def pod_config(name: str, log_dir: Path) -> Any:
    return api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="bench"),
        hostname=name[:63],
        log_directory=str(log_dir / name),
        linux=api.LinuxPodSandboxConfig(),
    )


def container_config(image: str, args: list[str]) -> Any:
    return api.ContainerConfig(
        metadata=api.ContainerMetadata(name="c"),
        image=api.ImageSpec(image=image),
        command=args,
        log_path="c.log",
        linux=api.LinuxContainerConfig(),
    )


class Timer:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = (now - self._t) * 1000
        self._t = now


def grpc_cycle(client: CriClient, image: str, name: str, log_dir: Path) -> dict[str, float]:
    rt = client.runtime
    timer = Timer()
    config = pod_config(name, log_dir)
    pod = rt.RunPodSandbox(api.RunPodSandboxRequest(config=config)).pod_sandbox_id
    timer.lap("runp")
    cid = rt.CreateContainer(api.CreateContainerRequest(
        pod_sandbox_id=pod, config=container_config(image, ["sleep", "3600"]),
        sandbox_config=config)).container_id
    timer.lap("create")
    rt.StartContainer(api.StartContainerRequest(container_id=cid))
    timer.lap("start")
    reply = rt.ExecSync(api.ExecSyncRequest(container_id=cid, cmd=["true"], timeout=10))
    if reply.exit_code != 0:
        raise RuntimeError(f"exec true exited {reply.exit_code}: {reply.stderr!r}")
    timer.lap("exec")
    rt.StopContainer(api.StopContainerRequest(container_id=cid, timeout=0))
    timer.lap("stop")
    rt.RemoveContainer(api.RemoveContainerRequest(container_id=cid))
    timer.lap("rm")
    rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod))
    timer.lap("stopp")
    rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod))
    timer.lap("rmp")
    return timer.laps


def crictl_command(crictl: str, node: str, runtime: Runtime) -> list[str]:
    """crictl against `runtime`, in the node's namespace, as a kubelet would be: `crictl exec`
    streams from the runtime's server on the node's 127.0.0.1."""
    return [*nodes.nsenter(node), crictl, "--runtime-endpoint", f"unix://{runtime.socket}",
            "--image-endpoint", f"unix://{runtime.socket}", "--timeout", "30s"]


def crictl_cycle(crictl: str, node: str, runtime: Runtime, image: str, name: str, work: Path
                 ) -> dict[str, float]:
    base = crictl_command(crictl, node, runtime)
    pod_json = work / f"{name}-pod.json"
    ctr_json = work / f"{name}-ctr.json"
    pod_json.write_text(json.dumps({
        "metadata": {"name": name, "uid": f"uid-{name}", "namespace": "bench"},
        "hostname": name[:63], "log_directory": str(work / "logs" / name), "linux": {}}))
    ctr_json.write_text(json.dumps({
        "metadata": {"name": "c"}, "image": {"image": image}, "command": ["sleep", "3600"],
        "log_path": "c.log", "linux": {}}))

    def run(*args: str) -> str:
        return subprocess.run([*base, *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    timer = Timer()
    pod = run("runp", str(pod_json))
    timer.lap("runp")
    cid = run("create", pod, str(ctr_json), str(pod_json))
    timer.lap("create")
    run("start", cid)
    timer.lap("start")
    run("exec", cid, "true")
    timer.lap("exec")
    run("stop", "--timeout", "0", cid)
    timer.lap("stop")
    run("rm", cid)
    timer.lap("rm")
    run("stopp", pod)
    timer.lap("stopp")
    run("rmp", pod)
    timer.lap("rmp")
    return timer.laps


def run_pod(client: CriClient, image: str, name: str, log_dir: Path) -> str:
    """A pod with one running `sleep` container; the container's id."""
    config = pod_config(name, log_dir)
    pod = client.runtime.RunPodSandbox(api.RunPodSandboxRequest(config=config)).pod_sandbox_id
    cid = client.runtime.CreateContainer(api.CreateContainerRequest(
        pod_sandbox_id=pod, config=container_config(image, ["sleep", "3600"]),
        sandbox_config=config)).container_id
    client.runtime.StartContainer(api.StartContainerRequest(container_id=cid))
    return str(cid)


def start_pod(client: CriClient, image: str, name: str, log_dir: Path) -> float:
    started = time.perf_counter()
    run_pod(client, image, name, log_dir)
    return (time.perf_counter() - started) * 1000


def exec_true(client: CriClient, cid: str) -> float:
    started = time.perf_counter()
    reply = client.runtime.ExecSync(api.ExecSyncRequest(container_id=cid, cmd=["true"],
                                                        timeout=10))
    if reply.exit_code != 0:
        raise RuntimeError(f"exec true exited {reply.exit_code}")
    return (time.perf_counter() - started) * 1000


# --- memory -------------------------------------------------------------------------------------


def pss_kib(pid: int) -> int:
    return smaps_rollup_kib(pid).get("Pss", 0)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def monitor_pids(runtime: Runtime, work: Path) -> list[int]:
    """The runtime's long-lived helpers for its containers: processes outside any container
    (their root is the machine's), other than the daemon, that mention this runtime's working
    directory in their command line or work in it (our shims' loops run in their state dirs)."""
    found = []
    needle = str(work).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == runtime.daemon_pid:
            continue
        try:
            if os.readlink(entry / "root") != "/":
                continue
            cmdline = (entry / "cmdline").read_bytes()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if needle in cmdline or cwd.startswith(f"{work}/"):
            found.append(int(entry.name))
    return found


def helper_pids(runtime: Runtime) -> dict[str, int]:
    """Long-lived children of the daemon that serve all its pods (our shim fork server)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if ppid == runtime.daemon_pid and b"--fork-server" in cmdline:
            found["shim fork server"] = int(entry.name)
    return found


# --- reporting ----------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("nan")


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}" if theirs else "n/a"


def print_cycle(title: str, laps: dict[str, list[dict[str, float]]]) -> None:
    print(f"\n{title}: median ms over {len(laps['ours'])} runs (ours / containerd)")
    print(f"  {'step':8} {'ours':>8} {'containerd':>11} {'ratio':>6}")
    for step in (*CYCLE_STEPS, "total"):
        if step == "total":
            ours = median([sum(r.values()) for r in laps["ours"]])
            theirs = median([sum(r.values()) for r in laps["containerd"]])
        else:
            ours = median([r[step] for r in laps["ours"]])
            theirs = median([r[step] for r in laps["containerd"]])
        print(f"  {step:8} {ours:8.1f} {theirs:11.1f} {ratio(ours, theirs):>6}")


@dataclass(frozen=True)
class Floor:
    """What the crictl cycle waits for whatever the runtime: crictl's own start and connection
    once per command, and the CNI chain's ADD and DEL."""

    crictl_ms: dict[str, float]  # `crictl version` against each runtime, median
    cni_add_ms: float
    cni_del_ms: float

    def of(self, name: str) -> float:
        return len(CYCLE_STEPS) * self.crictl_ms[name] + self.cni_add_ms + self.cni_del_ms


def shared_floor(crictl: str, node: str, runtimes: dict[str, Runtime], work: Path,
                 runs: int) -> Floor:
    crictl_ms: dict[str, list[float]] = {n: [] for n in runtimes}
    for _ in range(runs):
        for name, runtime in runtimes.items():
            started = time.perf_counter()
            subprocess.run([*crictl_command(crictl, node, runtime), "version"], check=True,
                           capture_output=True)
            crictl_ms[name].append((time.perf_counter() - started) * 1000)
    # A bridge and subnet of its own, in the same node, with the runtimes' conflist otherwise.
    conf = work / "floor.conflist"
    conf.write_text(conflist("bench-floor", "bench-floor0", "10.83.0.0/16", work / "floor-ipam"))
    out = subprocess.run([*nodes.nsenter(node), sys.executable, "-m", "bench.cni_chain",
                          str(conf), "--bin-dir", str(CNI_BIN), "--runs", str(runs)],
                         check=True, capture_output=True, text=True, cwd=REPO,
                         env=dict(os.environ, PYTHONPATH=str(REPO))).stdout
    chain = json.loads(out)
    return Floor({n: median(v) for n, v in crictl_ms.items()}, median(chain["add"]),
                 median(chain["del"]))


def print_floor(floor: Floor, claps: dict[str, list[dict[str, float]]]) -> None:
    print("\nShared floor of the crictl cycle: what it waits for whatever the runtime")
    for name, ms in floor.crictl_ms.items():
        print(f"  `crictl version` against {name}: {ms:.1f} ms, x {len(CYCLE_STEPS)} commands")
    print(f"  the CNI chain run alone (bench.cni_chain): ADD {floor.cni_add_ms:.1f} ms, "
          f"DEL {floor.cni_del_ms:.1f} ms")
    cycles = {name: median([sum(r.values()) for r in runs]) for name, runs in claps.items()}
    above = {name: cycle - floor.of(name) for name, cycle in cycles.items()}
    for name, cycle in cycles.items():
        print(f"  {name:11} floor {floor.of(name):6.1f} ms, cycle {cycle:6.1f}: "
              f"{above[name]:6.1f} above the floor")
    if len(claps) == 2:
        print(f"  a runtime that took no time would score "
              f"{floor.of('containerd') / cycles['containerd']:.2f}"
              f" against containerd's cycle; above the floor, ours / containerd's: "
              f"{ratio(above['ours'], above['containerd'])}")


def print_medians(title: str, laps: dict[str, list[dict[str, float]]]) -> None:
    """One runtime's cycle alone (--only): its medians, no ratios."""
    for name, runs in laps.items():
        total = median([sum(r.values()) for r in runs])
        steps = "  ".join(f"{s} {median([r[s] for r in runs]):.1f}" for s in CYCLE_STEPS)
        print(f"{name} ({title}): cycle median {total:.1f} ms ({steps})")


# --- main ---------------------------------------------------------------------------------------


@contextmanager
def stand_in_node(registry_port: int) -> Iterator[str]:
    with nodes.netns("cri-bench") as name:
        relay = nodes.Relay(name, registry_port)
        try:
            yield name
        finally:
            relay.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pod_cycle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--crictl", default=shutil.which("crictl"))
    parser.add_argument("--only", choices=["ours", "containerd"], default=None,
                        help="run one runtime alone (no ratios)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("run as root")

    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="cri-bench-", dir="/tmp"))
        work.chmod(0o711)
        if not os.environ.get("BENCH_KEEP"):
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        registry = stack.enter_context(LocalRegistry())
        push_image(registry.host, "bench/busybox", "1", busybox_image())
        pause = compile_pause(work / "pause")
        pause_layer = Layer().file("/pause", pause.read_bytes(), mode=0o755).build()
        push_image(registry.host, "bench/pause", "1",
                   build_image([pause_layer], {"Entrypoint": ["/pause"]}))
        image = f"{registry.host}/bench/busybox:1"
        node = stack.enter_context(stand_in_node(registry.port))

        runtimes: dict[str, Runtime] = {}
        if args.only in (None, "ours"):
            ours = start_ours(work / "ours", node, pause)
            runtimes["ours"] = ours
            stack.callback(stop_runtime, ours)
        if args.only in (None, "containerd"):
            ctrd = start_containerd(work / "containerd", node, registry.host,
                                    f"{registry.host}/bench/pause:1")
            runtimes["containerd"] = ctrd
            stack.callback(stop_runtime, ctrd)
        time.sleep(2)  # let start-up work settle before the idle reading
        start_rss = {n: rss_kib(r.daemon_pid) for n, r in runtimes.items()}
        for runtime in runtimes.values():
            client = runtime.connect()
            client.images.PullImage(api.PullImageRequest(image=api.ImageSpec(image=image)))
            if runtime.name == "containerd":
                client.images.PullImage(api.PullImageRequest(
                    image=api.ImageSpec(image=f"{registry.host}/bench/pause:1")))
        time.sleep(2)
        idle_rss = {n: (start_rss[n], rss_kib(r.daemon_pid)) for n, r in runtimes.items()}
        run_benchmarks(args, runtimes, work, image, idle_rss, node)
    return 0


def run_benchmarks(args: argparse.Namespace, runtimes: dict[str, Runtime], work: Path,
                   image: str, idle_rss: dict[str, tuple[int, int]], node: str) -> None:
    names = list(runtimes)
    log_dir = work / "logs"
    # warm-up: one cycle each, not counted
    for name in names:
        client = runtimes[name].client
        assert client is not None
        grpc_cycle(client, image, f"warm-{name}", log_dir)

    laps: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for i in range(args.runs):
        for name in names if i % 2 == 0 else reversed(names):
            client = runtimes[name].client
            assert client is not None
            laps[name].append(grpc_cycle(client, image, f"cycle-{name}-{i}", log_dir))
    if len(names) == 2:
        print_cycle("Full cycle through gRPC", laps)
    else:
        print_medians("gRPC", laps)

    if args.crictl:
        claps: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        for i in range(args.runs):
            for name in names if i % 2 == 0 else reversed(names):
                claps[name].append(crictl_cycle(args.crictl, node, runtimes[name], image,
                                                f"crictl-{name}-{i}", work))
        if len(names) == 2:
            print_cycle(f"Full cycle as crictl commands ({args.crictl})", claps)
        else:
            print_medians("crictl", claps)
        print_floor(shared_floor(args.crictl, node, runtimes, work, args.runs), claps)

    # ExecSync `true` in one running container
    execs: dict[str, list[float]] = {n: [] for n in names}
    targets: dict[str, str] = {}
    for name in names:
        client = runtimes[name].client
        assert client is not None
        targets[name] = run_pod(client, image, f"exec-{name}", log_dir)
        exec_true(client, targets[name])
    for i in range(args.runs):
        for name in names if i % 2 == 0 else reversed(names):
            client = runtimes[name].client
            assert client is not None
            execs[name].append(exec_true(client, targets[name]))
    print("\nExecSync `true` in a running container: median ms")
    for name in names:
        print(f"  {name:11} {median(execs[name]):8.1f}")
    if len(names) == 2:
        print(f"  ratio       {ratio(median(execs['ours']), median(execs['containerd'])):>8}")

    # density: pods started CONCURRENCY at a time, one runtime after the other
    print(f"\n{args.pods} pods (pause + sleep), {CONCURRENCY} started at a time")
    density: dict[str, tuple[list[float], int, int, int]] = {}
    for name in names:
        runtime = runtimes[name]
        client = runtime.client
        assert client is not None
        latencies: list[float] = []
        failures = 0
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
            futures = [pool.submit(start_pod, client, image, f"pod-{name}-{i}", log_dir)
                       for i in range(args.pods)]
            for future in futures:
                try:
                    latencies.append(future.result())
                except Exception as exc:  # reported, and counted
                    failures += 1
                    print(f"  {name}: a pod failed: {exc}")
        wall = (time.perf_counter() - started) * 1000
        time.sleep(1)
        pids = monitor_pids(runtime, work / name)
        pss = sum(pss_kib(pid) for pid in pids)
        density[name] = (latencies, failures, pss, len(pids))
        pods = args.pods + 1  # + the exec target's
        containers = 2 * pods  # pause containers counted
        print(f"  {name:11} start median {median(latencies):7.1f} ms  p99 {p99(latencies):7.1f}"
              f"  failures {failures}  wall {wall:7.0f} ms")
        print(f"  {'':11} {len(pids)} monitor processes, PSS {pss / 1024:.1f} MiB in all: "
              f"{pss / 1024 / containers:.2f} MiB per container (pause counted), "
              f"{pss / 1024 / pods:.2f} MiB per pod (pause included)")
        helpers = helper_pids(runtime)
        print(f"  {'':11} daemon RSS idle {idle_rss[name][0] / 1024:.1f} MiB at start, "
              f"{idle_rss[name][1] / 1024:.1f} MiB with images pulled, "
              f"{rss_kib(runtime.daemon_pid) / 1024:.1f} MiB with {pods} pods")
        if helpers:
            print(f"  {'':11} the daemon's helpers ({', '.join(helpers)}): RSS "
                  f"{sum(rss_kib(p) for p in helpers.values()) / 1024:.1f} MiB, PSS "
                  f"{sum(pss_kib(p) for p in helpers.values()) / 1024:.1f} MiB")
        remove_everything(client)


if __name__ == "__main__":
    sys.exit(main())
