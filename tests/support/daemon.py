"""Run the real daemon for a test: its own socket, root, state and cgroup parent."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from cri.api import MAX_MESSAGE_BYTES
from cri.api.runtime.v1 import api_pb2 as v1
from cri.api.runtime.v1 import api_pb2_grpc as v1_grpc
from cri.api.runtime.v1alpha2 import api_pb2 as v1alpha2
from cri.api.runtime.v1alpha2 import api_pb2_grpc as v1alpha2_grpc
from tests.support.leaks import cgroups_under, mounts_under, processes_mentioning

REPO = Path(__file__).resolve().parents[2]



@dataclass
class CriClient:
    """gRPC stubs of one API version, with that version's message module as `api`."""

    socket: Path
    version: str = "v1"
    api: Any = field(init=False)
    runtime: Any = field(init=False)
    images: Any = field(init=False)

    def __post_init__(self) -> None:
        # kubelet's and crictl's receive limit, not grpc's default 4 MiB
        self.channel = grpc.insecure_channel(f"unix://{self.socket}", options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
        module, stubs = (v1, v1_grpc) if self.version == "v1" else (v1alpha2, v1alpha2_grpc)
        self.api = module
        self.runtime = stubs.RuntimeServiceStub(self.channel)
        self.images = stubs.ImageServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()


class DaemonProcess:
    def __init__(
        self,
        workdir: Path,
        pause_binary: Path,
        *,
        extra_args: list[str] | None = None,
        config_file: Path | None = None,
        network: str = "loopback",
        node: str | None = None,
    ) -> None:
        # Pods get loopback only unless a test asks for CNI; then it also gives a stand-in
        # node (tests/support/node.py) for the daemon to run in.
        self.network = network
        self.node = node
        self.workdir = workdir
        self.socket = workdir / "cri.sock"
        self.root = workdir / "root"
        self.state = workdir / "state"
        self.cgroup_parent = f"/cri-test-{secrets.token_hex(4)}"
        self.log_file = workdir / "daemon.log"
        self.pause_binary = pause_binary
        self.extra_args = extra_args or []
        self.config_file = config_file
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        prefix = ["nsenter", f"--net=/run/netns/{self.node}", "--"] if self.node else []
        args = [
            *prefix,
            sys.executable,
            "-m",
            "cri",
            "--listen",
            f"unix://{self.socket}",
            "--root",
            str(self.root),
            "--state",
            str(self.state),
            "--pause-binary",
            str(self.pause_binary),
            "--cgroup-parent",
            self.cgroup_parent,
            "--log-level",
            "debug",
            "--network",
            self.network,
            *self.extra_args,
        ]
        if self.config_file is not None:
            args += ["--config", str(self.config_file)]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        log = self.log_file.open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, cwd=REPO, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}:\n{self.read_log()}")
            if self.socket.exists():
                client = CriClient(self.socket)
                try:
                    client.runtime.Version(v1.VersionRequest(), timeout=2)
                    client.images.ImageFsInfo(v1.ImageFsInfoRequest(), timeout=2)
                    return
                except grpc.RpcError:
                    pass
                finally:
                    client.close()
            time.sleep(0.05)
        raise RuntimeError(f"daemon did not become ready:\n{self.read_log()}")

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def read_log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-20000:]
        except OSError:
            return ""


def remove_everything(client: CriClient) -> None:
    api = client.api
    for sandbox in client.runtime.ListPodSandbox(api.ListPodSandboxRequest()).items:
        client.runtime.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=sandbox.id))
        client.runtime.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id))
    for container in client.runtime.ListContainers(api.ListContainersRequest()).containers:
        client.runtime.RemoveContainer(api.RemoveContainerRequest(container_id=container.id))


def child_cgroups(parent: str) -> list[str]:
    found = []
    for path in cgroups_under(parent):
        found += [str(p) for p in Path(path).iterdir() if p.is_dir()]
    return found


@contextmanager
def running_daemon(pause_binary: Path, config_toml: str = "", *, network: str = "loopback",
                   node: str | None = None) -> Iterator[DaemonProcess]:
    """A daemon on a fresh temp root; afterwards everything is removed through the API and the
    test fails if any mount, cgroup, network namespace or process was left behind."""
    # Short paths: overlay mount options must fit in one page.
    workdir = Path(tempfile.mkdtemp(prefix="cri-", dir="/tmp"))
    # As /run and /var/lib are: a pod's user-namespaced root must reach its rootfs below.
    workdir.chmod(0o711)
    config_file = None
    if config_toml:
        config_file = workdir / "config.toml"
        config_file.write_text(config_toml)
    process = DaemonProcess(workdir, pause_binary, config_file=config_file, network=network,
                            node=node)
    process.start()
    try:
        yield process
    finally:
        if process.proc is None or process.proc.poll() is not None:
            process.start()  # a test that stopped the daemon: clean up through a new one
        client = CriClient(process.socket)
        try:
            remove_everything(client)
        finally:
            client.close()
            process.stop()
        leftovers = {
            "mounts": mounts_under(workdir),
            "cgroups": child_cgroups(process.cgroup_parent),
            "netns": [str(p) for p in (process.state / "netns").glob("*")],
            "processes": processes_mentioning(str(workdir)),
        }
        for path in cgroups_under(process.cgroup_parent):
            Path(path).rmdir()
        log = process.read_log()
        shutil.rmtree(workdir, ignore_errors=True)
        assert not any(leftovers.values()), f"left behind: {leftovers}\n{log}"
