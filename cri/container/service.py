"""The container domain: what CreateContainer and friends do, one module per operation."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cri.api.runtime.v1 import api_pb2 as v1
from cri.config import Config
from cri.container.model import Container
from cri.container.store import ContainerStore
from cri.image import ImageService
from cri.paths import Paths
from cri.sandbox import SandboxService
from cri.shim.forkserver import ForkServer
from cri.storage import RootfsLayout
from cri.storage.trash import Trash
from cri.task import ExecResult, TaskRunner
from cri.task.exit_watcher import ExitWatcher

WATCH_PREFIX = "container/"
# The shim writes the exit file right after it has reaped the task; the pidfd fires at the exit.
EXIT_FILE_WAIT = 5.0


@dataclass
class ContainerService:
    config: Config
    paths: Paths
    store: ContainerStore
    images: ImageService
    sandboxes: SandboxService
    trash: Trash  # where removals put the container's directories
    exits: ExitWatcher | None = None
    shim_server: ForkServer | None = None
    # Re-entrant: a stop or remove that holds it reads the container, and the read releases an
    # exited task under it (status.release_task).
    _locks: defaultdict[str, threading.RLock] = field(
        default_factory=lambda: defaultdict(threading.RLock))
    _exit_locks: defaultdict[str, threading.Lock] = field(
        default_factory=lambda: defaultdict(threading.Lock))
    # Tasks CreateContainer began (container/start.py), until a start or a discard takes them.
    _early_tasks: dict[str, Future[int]] = field(default_factory=dict)
    _early_guard: threading.Lock = field(default_factory=threading.Lock)

    def lock(self, container_id: str) -> threading.RLock:
        return self._locks[container_id]

    def exit_lock(self, container_id: str) -> threading.Lock:
        """Held only while an exit is recorded (status.refreshed), never around other locks."""
        return self._exit_locks[container_id]

    def put_early_task(self, container_id: str, creation: Future[int]) -> None:
        with self._early_guard:
            self._early_tasks[container_id] = creation

    def take_early_task(self, container_id: str) -> Future[int] | None:
        """The early creation of this container's task, waited for; None if there is none."""
        with self._early_guard:
            creation = self._early_tasks.pop(container_id, None)
        if creation is not None:
            creation.exception()  # waits; the outcome stays in the future
        return creation

    def runner(self, container: Container) -> TaskRunner:
        try:
            handler = self.config.handler(container.runtime_handler)
        except KeyError:
            handler = self.config.handler("")
        return TaskRunner(self.paths.oci_root, handler, self.shim_server)

    def rootfs_layout(self, container_id: str) -> RootfsLayout:
        return RootfsLayout(data_dir=self.paths.container_data(container_id) / "rootfs",
                            mount_point=self.paths.container_state(container_id) / "rootfs")

    def task_dir(self, container_id: str) -> Path:
        return self.paths.container_state(container_id) / "task"

    def create(self, sandbox_id: str, config: v1.ContainerConfig,
               sandbox_config: v1.PodSandboxConfig) -> str:
        from cri.container.create import create_container

        return create_container(self, sandbox_id, config, sandbox_config)

    def start(self, container_id: str) -> None:
        from cri.container.start import start_container

        start_container(self, container_id)

    def stop(self, container_id: str, timeout: float) -> None:
        from cri.container.stop import stop_container

        stop_container(self, container_id, timeout)

    def remove(self, container_id: str) -> None:
        from cri.container.remove import remove_container

        remove_container(self, container_id)

    def watch_exit(self, container: Container) -> None:
        """Have the exit of a running container recorded (and announced) when it happens."""
        if self.exits is not None and container.status.state == v1.CONTAINER_RUNNING:
            self.exits.watch(WATCH_PREFIX + container.id, container.status.pid,
                             container.status.pid_start)

    def notice_exit(self, container_id: str) -> None:
        """The exit watcher saw the task's process end: record it as a status read would."""
        container = self.store.find(container_id)
        if container is None or container.status.state != v1.CONTAINER_RUNNING:
            return
        self.runner(container).wait_exit(self.task_dir(container.id), EXIT_FILE_WAIT)
        self.get(container.id)

    def get(self, container_id: str) -> Container:
        from cri.container.status import refreshed

        return refreshed(self, self.store.get(container_id))

    def list(self, sandbox_id: str | None = None) -> Sequence[Container]:
        from cri.container.status import refreshed

        return [refreshed(self, c) for c in self.store.list(sandbox_id)]

    def exec_sync(self, container_id: str, cmd: Sequence[str], timeout: float) -> ExecResult:
        from cri.container.exec_sync import exec_sync

        return exec_sync(self, container_id, cmd, timeout)

    def update_resources(self, container_id: str,
                         resources: v1.LinuxContainerResources) -> None:
        from cri.container.update import update_resources

        update_resources(self, container_id, resources)

    def reopen_log(self, container_id: str) -> None:
        from cri.container.reopen_log import reopen_log

        reopen_log(self, container_id)

    def oci_spec(self, container: Container) -> dict[str, Any] | None:
        """The container's OCI spec as last written (None once its state dir is gone)."""
        try:
            spec: dict[str, Any] = json.loads(
                (self.paths.container_state(container.id) / "config.json").read_text())
        except (OSError, ValueError):
            return None
        return spec

    # What the sandbox domain asks of us (cri.sandbox.PodContainers).
    def stop_all(self, sandbox_id: str) -> None:
        for container in self.store.list(sandbox_id):
            self.stop(container.id, 0)

    def remove_all(self, sandbox_id: str) -> None:
        for container in self.store.list(sandbox_id):
            self.remove(container.id)
