"""The same CRI configs under the in-tree executor and under runc (Debian's, the oracle), through
the real daemon: what the container sees from inside must be the same.

Each case runs a probe script as the container's command (the create path) and again through
ExecSync (the exec path), and compares section by section.
"""

from __future__ import annotations

import difflib
import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cri.api.runtime.v1 import api_pb2 as v1
from cri.logs.cri_format import parse_line
from tests.support.daemon import CriClient, DaemonProcess, running_daemon

PROBE = r"""
echo "== id"; id
echo "== status"; grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status
echo "== hostname"; hostname
echo "== cwd"; pwd
echo "== env"; env | grep -v -E '^(HOSTNAME|PWD|SHLVL|_)='
echo "== ulimit"; ulimit -a
echo "== dev"; ls -l /dev | grep -v '^total'
echo "== mounts"; cat /proc/self/mounts
echo "== masked"; head -c 16 /proc/kcore 2>&1 | wc -c; ls /proc/acpi 2>&1 | wc -l
echo "== readonly"; (echo 1 > /proc/sys/vm/overcommit_memory) 2>&1; (echo x > /probe-file) 2>&1
echo "== cgroup"; for f in memory/memory.limit_in_bytes cpu/cpu.shares cpu/cpu.cfs_quota_us \
    cpu/cpu.cfs_period_us cpuset/cpuset.cpus pids/pids.max; do
  echo "$f $(cat /sys/fs/cgroup/$f 2>&1)"; done
echo "== pid1"; cat /proc/1/cmdline | tr '\0' ' '; echo
echo "== sysctl"; cat /proc/sys/kernel/shm_rmid_forced
echo "== extra"; EXTRA
"""


def normalise(section: str, text: str) -> str:
    lines = text.splitlines()
    if section == "mounts":
        out = []
        for line in lines:
            source, point, fstype, options = line.split()[:4]
            opts = sorted(o for o in options.split(",")
                          if not o.startswith(("lowerdir=", "upperdir=", "workdir=", "index=",
                                               "redirect_dir=", "uuid=", "xino=")))
            out.append(f"{point} {fstype} {','.join(opts)}")
        return "\n".join(sorted(out))
    if section == "dev":
        # Device listing without dates (creation times differ run to run).
        return "\n".join(sorted(re.sub(r"\w{3} +\d+ +[\d:]+ ", "", line) for line in lines))
    return text


def sections(output: str) -> dict[str, str]:
    found: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("== "):
            current = line[3:].strip()
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return {name: normalise(name, "\n".join(body)) for name, body in found.items()}


def pod(cri: CriClient, log_dir: Path, handler: str, **linux: Any) -> tuple[str, Any]:
    name = f"diff-{handler or 'intree'}-{secrets.token_hex(3)}"
    config = v1.PodSandboxConfig(
        metadata=v1.PodSandboxMetadata(name=name, namespace="diff", uid=secrets.token_hex(8)),
        hostname="probe-host", log_directory=str(log_dir),
        linux=v1.LinuxPodSandboxConfig(sysctls={"kernel.shm_rmid_forced": "1"}, **linux))
    sandbox_id = cri.runtime.RunPodSandbox(v1.RunPodSandboxRequest(
        config=config, runtime_handler=handler)).pod_sandbox_id
    return sandbox_id, config


def run_probe(cri: CriClient, sandbox: tuple[str, Any], image: str, log_dir: Path,
              config: v1.ContainerConfig, extra: str) -> tuple[dict[str, str], dict[str, str],
                                                            int]:
    sandbox_id, sandbox_config = sandbox
    name = f"c{secrets.token_hex(4)}"
    probe = PROBE.replace("EXTRA", extra)
    config.metadata.name = name
    config.image.image = image
    config.log_path = f"{name}.log"
    del config.command[:]
    config.command.extend(["sh", "-c", probe + "\nsleep 1000"])
    container_id = cri.runtime.CreateContainer(v1.CreateContainerRequest(
        pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config)).container_id
    try:
        cri.runtime.StartContainer(v1.StartContainerRequest(container_id=container_id))
        log = log_dir / f"{name}.log"
        deadline = time.monotonic() + 15
        text = ""
        while time.monotonic() < deadline:
            if log.exists():
                text = "\n".join(parse_line(line).content.decode(errors="replace")
                                 for line in log.read_bytes().splitlines(keepends=True))
                if "== extra" in text:
                    time.sleep(0.2)
                    text = "\n".join(parse_line(line).content.decode(errors="replace")
                                     for line in log.read_bytes().splitlines(keepends=True))
                    break
            time.sleep(0.05)
        init_view = sections(text)
        result = cri.runtime.ExecSync(v1.ExecSyncRequest(container_id=container_id,
                                                         cmd=["sh", "-c", probe], timeout=20))
        exec_view = sections(result.stdout.decode(errors="replace")
                             + result.stderr.decode(errors="replace"))
        exit_result = cri.runtime.ExecSync(v1.ExecSyncRequest(
            container_id=container_id, cmd=["sh", "-c", "exit 7"], timeout=10))
        return init_view, exec_view, exit_result.exit_code
    finally:
        cri.runtime.RemoveContainer(v1.RemoveContainerRequest(container_id=container_id))


View = tuple[dict[str, str], dict[str, str], int]


def assert_same_views(case: str, ours: str, views: dict[str, View]) -> None:
    """What `ours` saw (in the init, in an exec, the exit code) is what runc saw."""
    mine_all, oracle_all = views[ours], views["runc"]
    assert mine_all[2] == oracle_all[2] == 7
    for index, where in ((0, "init"), (1, "exec")):
        mine, oracle = mine_all[index], oracle_all[index]
        assert set(mine) == set(oracle), f"{where}: sections differ"
        for section in oracle:
            diff = "\n".join(difflib.unified_diff(oracle[section].splitlines(),
                                                   mine[section].splitlines(), "runc",
                                                   ours, lineterm=""))
            assert mine[section] == oracle[section], f"{case} {where} [{section}]:\n{diff}"


def security(**kw: Any) -> v1.ContainerConfig:
    kw.setdefault("namespace_options", v1.NamespaceOption(pid=v1.CONTAINER))
    return v1.ContainerConfig(linux=v1.LinuxContainerConfig(
        security_context=v1.LinuxContainerSecurityContext(**kw)))


def resources(**kw: Any) -> v1.ContainerConfig:
    config = security()
    config.linux.resources.CopyFrom(v1.LinuxContainerResources(**kw))
    return config


def with_mounts(host_dir: Path) -> v1.ContainerConfig:
    config = security()
    config.mounts.extend([
        v1.Mount(container_path="/data-ro", host_path=str(host_dir), readonly=True),
        v1.Mount(container_path="/data-rw", host_path=str(host_dir)),
        v1.Mount(container_path="/data-slave", host_path=str(host_dir),
                 propagation=v1.PROPAGATION_HOST_TO_CONTAINER),
    ])
    return config


CASES: dict[str, tuple[Callable[[Path], v1.ContainerConfig], str]] = {
    "default": (lambda d: security(), "true"),
    "run-as-user": (lambda d: security(run_as_user=v1.Int64Value(value=1000),
                                       run_as_group=v1.Int64Value(value=1000),
                                       supplemental_groups=[4242]), "true"),
    "run-as-username": (lambda d: security(run_as_username="app"), "true"),
    "strict-groups": (lambda d: security(run_as_username="app", supplemental_groups=[7],
                                         supplemental_groups_policy=v1.Strict), "true"),
    "capabilities": (lambda d: security(capabilities=v1.Capability(
        add_capabilities=["SYS_ADMIN", "NET_ADMIN"], drop_capabilities=["CHOWN", "KILL"])),
        "true"),
    "drop-all-caps": (lambda d: security(capabilities=v1.Capability(
        drop_capabilities=["ALL"], add_capabilities=["NET_BIND_SERVICE"])), "true"),
    "privileged": (lambda d: security(privileged=True), "ls /dev | wc -l"),
    "no-new-privs": (lambda d: security(no_new_privs=True), "true"),
    "seccomp-runtime-default": (lambda d: security(seccomp=v1.SecurityProfile(
        profile_type=v1.SecurityProfile.RuntimeDefault)),
        "(unshare -U true || echo unshare-denied) 2>&1; mkdir /tmp/ok && echo mkdir-ok"),
    "seccomp-localhost": (lambda d: security(seccomp=v1.SecurityProfile(
        profile_type=v1.SecurityProfile.Localhost, localhost_ref=str(d / "deny-mkdir.json"))),
        "(mkdir /tmp/denied) 2>&1; echo done"),
    "readonly-rootfs": (lambda d: security(readonly_rootfs=True),
                        "(echo x > /tmp/x) 2>&1; echo x > /dev/shm/x && echo shm-ok; "
                        "rm -f /dev/shm/x"),
    "masked-paths": (lambda d: security(masked_paths=["/etc/passwd"],
                                        readonly_paths=["/tmp"]),
                     "cat /etc/passwd | wc -c; (echo x > /tmp/y) 2>&1"),
    "mounts": (with_mounts, "cat /data-ro/hello; (echo x > /data-ro/new) 2>&1; "
                            "echo y > /data-rw/new && cat /data-rw/new"),
    "resources": (lambda d: resources(memory_limit_in_bytes=64 << 20, cpu_shares=512,
                                      cpu_quota=50000, cpu_period=100000, cpuset_cpus="0"),
                  "true"),
    "pod-pid-namespace": (lambda d: security(namespace_options=v1.NamespaceOption(pid=v1.POD)),
                          "ps -o comm | grep -c pause"),
    "working-dir-env": (lambda d: v1.ContainerConfig(
        working_dir="/tmp", envs=[v1.KeyValue(key="GREETING", value=b"hi there")],
        linux=v1.LinuxContainerConfig(security_context=v1.LinuxContainerSecurityContext(
            namespace_options=v1.NamespaceOption(pid=v1.CONTAINER)))), "echo $GREETING"),
}


def our_cli_binary() -> Path:
    """The executor's compiled command line (cri/oci/front/), built where missing."""
    from cri.oci.front import installed_binary

    return installed_binary()


@pytest.fixture(scope="module")
def daemon(pause_binary: Path) -> Iterator[DaemonProcess]:
    # "cri-oci": our own executor again, but driven as runc is, through its command line
    config = (f'[runtimes.runc]\nbinary = "/usr/sbin/runc"\n'
              f'[runtimes.cri-oci]\nbinary = "{our_cli_binary()}"\n')
    with running_daemon(pause_binary, config) as d:
        yield d


@pytest.fixture(scope="module")
def pods(daemon: DaemonProcess, busybox_ref: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cri = CriClient(daemon.socket)
    cri.images.PullImage(v1.PullImageRequest(image=v1.ImageSpec(image=busybox_ref)))
    log_dir = tmp_path_factory.mktemp("difflogs")
    host_dir = tmp_path_factory.mktemp("hostdir")
    (host_dir / "hello").write_text("hello from the host\n")
    (host_dir / "deny-mkdir.json").write_text(
        '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], '
        '"action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}')
    yield {
        "cri": cri, "logs": log_dir, "host_dir": host_dir,
        "in-tree": pod(cri, log_dir, ""), "runc": pod(cri, log_dir, "runc"),
        "cri-oci": pod(cri, log_dir, "cri-oci"),
    }
    cri.close()


@pytest.mark.parametrize("case", sorted(CASES))
def test_container_sees_the_same_under_both(case: str, pods: dict[str, Any],
                                            busybox_ref: str) -> None:
    build, extra = CASES[case]
    views = {}
    for handler in ("in-tree", "runc"):
        views[handler] = run_probe(pods["cri"], pods[handler], busybox_ref, pods["logs"],
                                   build(pods["host_dir"]), extra)
    assert_same_views(case, "in-tree", views)


@pytest.mark.parametrize("case", ["default", "resources", "run-as-user", "pod-pid-namespace"])
def test_our_command_line_as_a_handler_sees_what_runc_sees(case: str, pods: dict[str, Any],
                                                           busybox_ref: str) -> None:
    """The handler contract runc and crun are driven through (the shim runs `create`, the
    daemon `start`, `kill`, `delete` as programs), with our own `cri-oci` as the program."""
    build, extra = CASES[case]
    views = {handler: run_probe(pods["cri"], pods[handler], busybox_ref, pods["logs"],
                                build(pods["host_dir"]), extra)
             for handler in ("cri-oci", "runc")}
    assert_same_views(case, "cri-oci", views)


def test_update_resources_the_same_under_both(pods: dict[str, Any], busybox_ref: str) -> None:
    cri = pods["cri"]
    seen = {}
    for handler in ("in-tree", "runc"):
        sandbox_id, sandbox_config = pods[handler]
        config = security()
        config.metadata.name = f"upd{secrets.token_hex(3)}"
        config.image.image = busybox_ref
        config.command.extend(["sleep", "1000"])
        container_id = cri.runtime.CreateContainer(v1.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=config,
            sandbox_config=sandbox_config)).container_id
        try:
            cri.runtime.StartContainer(v1.StartContainerRequest(container_id=container_id))
            cri.runtime.UpdateContainerResources(v1.UpdateContainerResourcesRequest(
                container_id=container_id, linux=v1.LinuxContainerResources(
                    memory_limit_in_bytes=40 << 20, cpu_quota=20000, cpu_period=100000)))
            seen[handler] = cri.runtime.ExecSync(v1.ExecSyncRequest(
                container_id=container_id, timeout=10, cmd=[
                    "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                    "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"])).stdout
        finally:
            cri.runtime.RemoveContainer(v1.RemoveContainerRequest(container_id=container_id))
    assert seen["in-tree"] == seen["runc"] == f"{40 << 20}\n20000\n".encode()
