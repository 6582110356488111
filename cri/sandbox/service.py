"""The sandbox domain: what RunPodSandbox and friends do, one module per operation."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Protocol

from cri.api.runtime.v1 import api_pb2 as v1
from cri.config import Config
from cri.image import ImageService
from cri.network.manager import NetworkManager
from cri.paths import Paths
from cri.sandbox.model import READY, Sandbox
from cri.sandbox.store import SandboxStore
from cri.shim.forkserver import ForkServer
from cri.spec.container import PodEnvironment
from cri.spec.userns import pod_mappings
from cri.storage.trash import Trash
from cri.task import TaskRunner
from cri.task.exit_watcher import ExitWatcher

WATCH_PREFIX = "sandbox/"
EXIT_FILE_WAIT = 5.0


class PodContainers(Protocol):
    """What the sandbox domain needs from the container domain."""

    def stop_all(self, sandbox_id: str) -> None: ...

    def remove_all(self, sandbox_id: str) -> None: ...


@dataclass
class SandboxService:
    config: Config
    paths: Paths
    store: SandboxStore
    images: ImageService
    network: NetworkManager
    trash: Trash  # where removals put the sandbox's directories
    containers: PodContainers | None = None
    exits: ExitWatcher | None = None
    shim_server: ForkServer | None = None
    _locks: defaultdict[str, threading.Lock] = field(
        default_factory=lambda: defaultdict(threading.Lock))

    def lock(self, sandbox_id: str) -> threading.Lock:
        """Operations on one sandbox run one at a time (kubelet retries overlap)."""
        return self._locks[sandbox_id]

    def run(self, config: v1.PodSandboxConfig, runtime_handler: str) -> str:
        from cri.sandbox.run import run_sandbox

        return run_sandbox(self, config, runtime_handler)

    def stop(self, sandbox_id: str) -> None:
        from cri.sandbox.stop import stop_sandbox

        stop_sandbox(self, sandbox_id)

    def remove(self, sandbox_id: str) -> None:
        from cri.sandbox.remove import remove_sandbox

        remove_sandbox(self, sandbox_id)

    def watch_exit(self, sandbox: Sandbox) -> None:
        """Have the pause task's exit recorded (and announced) when it happens."""
        if self.exits is not None and sandbox.status.state == READY:
            self.exits.watch(WATCH_PREFIX + sandbox.id, sandbox.status.pid,
                             sandbox.status.pid_start)

    def notice_exit(self, sandbox_id: str) -> None:
        sandbox = self.store.find(sandbox_id)
        if sandbox is None or sandbox.status.state != READY:
            return
        TaskRunner.wait_exit(self.paths.sandbox_state(sandbox.id) / "task", EXIT_FILE_WAIT)
        self.get(sandbox.id)

    def get(self, sandbox_id: str) -> Sandbox:
        from cri.sandbox.status import refreshed

        return refreshed(self, self.store.get(sandbox_id))

    def pod_environment(self, sandbox: Sandbox) -> PodEnvironment:
        """What the pod's containers borrow: its namespaces and its files."""
        data_dir = self.paths.sandbox_data(sandbox.id)
        return PodEnvironment(
            pause_pid=sandbox.status.pid,
            netns_path=sandbox.netns_path,
            host_network=sandbox.host_network,
            host_ipc=sandbox.host_ipc,
            host_pid=sandbox.host_pid,
            hostname_file=data_dir / "hostname",
            hosts_file=data_dir / "hosts",
            resolv_conf=data_dir / "resolv.conf",
            shm_dir=None if sandbox.host_ipc else self.paths.sandbox_state(sandbox.id) / "shm",
            userns=pod_mappings(sandbox.config.linux.security_context.namespace_options),
        )

    def list(self) -> list[Sandbox]:
        from cri.sandbox.status import refreshed

        return [refreshed(self, s) for s in self.store.list()]
