"""The gRPC server on the unix socket: both services, both API versions."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc

from cri.api import MAX_MESSAGE_BYTES
from cri.api.runtime.v1 import api_pb2 as v1
from cri.server.dispatch import build_handler

log = logging.getLogger(__name__)

# v1alpha2's methods. Each has the same messages (by name and field numbers) and streaming as
# v1's method of that name, so v1's descriptors serve them; tests/unit/test_server_dispatch.py
# checks this list against api/runtime/v1alpha2. Not read from v1alpha2's own descriptors:
# loading them costs the daemon 0.6 MiB, for names.
V1ALPHA2_METHODS: dict[str, tuple[str, ...]] = {
    "RuntimeService": (
        "Version", "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "PodSandboxStatus",
        "ListPodSandbox", "CreateContainer", "StartContainer", "StopContainer",
        "RemoveContainer", "ListContainers", "ContainerStatus", "UpdateContainerResources",
        "ReopenContainerLog", "ExecSync", "Exec", "Attach", "PortForward", "ContainerStats",
        "ListContainerStats", "PodSandboxStats", "ListPodSandboxStats", "UpdateRuntimeConfig",
        "Status",
    ),
    "ImageService": ("ListImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo"),
}



class GrpcServer:
    def __init__(
        self,
        socket_path: Path,
        runtime: object,
        images: object,
        ready: Callable[[], bool],
        *,
        # NOTE: a server-streaming RPC (GetContainerEvents) holds a worker for its whole life;
        # the pool starts threads only as calls need them, so a high bound costs nothing idle.
        workers: int = 128,
    ) -> None:
        self.socket_path = socket_path
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        v1_runtime = v1.DESCRIPTOR.services_by_name["RuntimeService"]
        v1_images = v1.DESCRIPTOR.services_by_name["ImageService"]
        alpha_version = getattr(runtime, "VersionAlpha", None)
        self._server.add_generic_rpc_handlers(
            (
                build_handler(v1_runtime, runtime, v1, ready),
                build_handler(v1_images, images, v1, ready),
                build_handler(v1_runtime, runtime, v1, ready,
                              {"Version": alpha_version} if alpha_version else None,
                              as_service=("runtime.v1alpha2.RuntimeService",
                                          V1ALPHA2_METHODS["RuntimeService"])),
                build_handler(v1_images, images, v1, ready,
                              as_service=("runtime.v1alpha2.ImageService",
                                          V1ALPHA2_METHODS["ImageService"])),
            )
        )

    def start(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if self.socket_path.is_socket():
            # A socket left by a daemon that died; a live daemon would still hold it open.
            self.socket_path.unlink()
        self._server.add_insecure_port(f"unix://{self.socket_path}")
        self._server.start()
        os.chmod(self.socket_path, 0o660)
        log.info("serving CRI v1 and v1alpha2 on unix://%s", self.socket_path)

    def stop(self, grace: float = 5.0) -> None:
        self._server.stop(grace).wait()
        self.socket_path.unlink(missing_ok=True)

    def wait(self) -> None:
        self._server.wait_for_termination()
