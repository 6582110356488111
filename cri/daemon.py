"""The daemon's entry point: configuration, logging, domains, recovery, the gRPC server."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from cri import config as config_module
from cri.api.runtime.v1 import api_pb2 as v1
from cri.config import BUILTIN_PAUSE_IMAGE, Config
from cri.container import ContainerService, ContainerStore
from cri.container.service import WATCH_PREFIX as CONTAINER_PREFIX
from cri.events import EventBroker, LifecycleEvent
from cri.image import ImageService
from cri.image_service import ImageServicer
from cri.network.manager import NetworkManager
from cri.paths import Paths
from cri.recovery import recover
from cri.runtime_service import RuntimeServicer
from cri.sandbox import SandboxService, SandboxStore
from cri.sandbox.builtin_image import register_builtin_pause
from cri.sandbox.pause import find_pause_binary
from cri.sandbox.service import WATCH_PREFIX as SANDBOX_PREFIX
from cri.server import GrpcServer
from cri.shim import loop as shim_loop
from cri.shim.forkserver import ForkServer
from cri.stats import StatsService
from cri.storage.trash import Trash
from cri.store import Database
from cri.stream_runtime import StreamRuntime
from cri.stream_urls import StreamUrls
from cri.streaming.server import StreamingServer
from cri.task.exit_watcher import ExitWatcher

log = logging.getLogger("cri")


class Daemon:
    """Owns every domain object; built once at start-up."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.paths = Paths(root=config.root, state=config.state)
        for directory in (config.root, config.state, self.paths.oci_root):
            directory.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.db = Database(self.paths.database)
        self.trash = Trash([config.root, config.state])
        self.images = ImageService(config.root, self.db, config.registry_mirrors,
                                   layers_in_use=self._layers_in_use)
        self.events: EventBroker[v1.ContainerEventResponse] = EventBroker(self._render_event)
        self.exits = ExitWatcher(self._on_exit)
        self.shim_server = ForkServer(config.shim_fork_server)
        self.network = NetworkManager(
            config.network, config.cni_conf_dir,
            [Path(d) for d in config.cni_bin_dir.split(":") if d], config.cni_timeout)
        self.sandboxes = SandboxService(config, self.paths, SandboxStore(self.db, self.events),
                                        self.images, self.network, exits=self.exits,
                                        shim_server=self.shim_server, trash=self.trash)
        self.containers = ContainerService(config, self.paths,
                                           ContainerStore(self.db, self.events), self.images,
                                           self.sandboxes, exits=self.exits,
                                           shim_server=self.shim_server, trash=self.trash)
        self.sandboxes.containers = self.containers
        self._ready = threading.Event()
        self.streaming = StreamingServer(config.stream_address, config.stream_port,
                                         StreamRuntime(self.containers, self.sandboxes),
                                         idle_timeout=config.stream_idle_timeout,
                                         creation_timeout=config.stream_creation_timeout)
        self.runtime = RuntimeServicer(config, self.sandboxes, self.containers, self.images,
                                       StatsService(config, self.sandboxes, self.containers),
                                       self.events,
                                       StreamUrls(self.streaming, self.containers,
                                                  self.sandboxes))
        self.server = GrpcServer(
            config.socket_path,
            self.runtime,
            ImageServicer(self.images, config.root / "images"),
            self._ready.is_set,
        )

    def _render_event(self, event: LifecycleEvent) -> v1.ContainerEventResponse:
        return self.runtime.render_event(event)

    def _on_exit(self, key: str) -> None:
        if key.startswith(CONTAINER_PREFIX):
            self.containers.notice_exit(key[len(CONTAINER_PREFIX):])
        elif key.startswith(SANDBOX_PREFIX):
            self.sandboxes.notice_exit(key[len(SANDBOX_PREFIX):])

    def _layers_in_use(self) -> set[str]:
        """Layers under a sandbox or container rootfs: removing an image must not pull them.

        Read from the records, not the images: the image may already be gone. A removed
        container's rootfs may still be mounted in the trash: drained first."""
        self.trash.drain()
        in_use: set[str] = set()
        for sandbox in self.sandboxes.store.list():
            in_use.update(sandbox.image_layers)
        for container in self.containers.store.list():
            in_use.update(container.image_layers)
        return in_use

    def prepare(self) -> None:
        if self.config.sandbox_image == BUILTIN_PAUSE_IMAGE:
            binary = find_pause_binary(self.config.pause_binary)
            if binary is None:
                log.warning("no pause binary found: the built-in pause image is unavailable, "
                            "pods will fail until sandbox_image or pause_binary is set")
            else:
                register_builtin_pause(self.images, BUILTIN_PAUSE_IMAGE, binary)
        if not shim_loop.built():
            log.warning("cri-shim-loop is not built (%s): every container's monitor stays a "
                        "Python interpreter, about 10 MiB each; reinstall the package",
                        shim_loop.BINARY)
        self.trash.start()
        self.events.start()
        self.exits.start()
        self.shim_server.start()
        recover(self.sandboxes, self.containers)
        self._ready.set()

    def serve(self) -> None:
        self.streaming.start()
        self.server.start()
        self.prepare()
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        stop.wait()
        self.events.stop()  # ends the event streams, so the server's grace is not spent on them
        self.server.stop()
        self.streaming.stop()
        self.exits.stop()
        self.trash.close()  # every removal finished: nothing left mounted
        self.shim_server.close()
        self.db.close()
        log.info("stopped; containers keep running under their shims")


def main(argv: Sequence[str] | None = None) -> int:
    config = config_module.parse_args(argv)
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    Daemon(config).serve()
    return 0
