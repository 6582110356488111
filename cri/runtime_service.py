"""RuntimeService over gRPC: proto in, domain call, proto out. No decisions are made here.

The methods are named after the RPCs; `cri.server.dispatch` routes both `runtime.v1` and
`runtime.v1alpha2` to them and maps domain errors to statuses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

import grpc
from google.protobuf.message import Message

from cri import __version__, handler_features
from cri.api.runtime.v1 import api_pb2 as v1
from cri.config import Config
from cri.container import Container, ContainerService
from cri.errors import Unavailable
from cri.events import EventBroker, LifecycleEvent, Overflowed
from cri.image import ImageService
from cri.sandbox import READY, Sandbox, SandboxService
from cri.server.pages import pages
from cri.stats import StatsService
from cri.stats.metrics import MetricsCollector, descriptors
from cri.stream_urls import StreamUrls
from cri.streaming.requests import AttachRequest, ExecRequest, PortForwardRequest

RUNTIME_NAME = "cri-py"
# The CRI "version" field is the kubelet-facing API version, fixed at 0.1.0 by every runtime.
KUBELET_API_VERSION = "0.1.0"


def _network_status(sandbox: Sandbox) -> v1.PodSandboxNetworkStatus:
    ips = sandbox.status.ips
    return v1.PodSandboxNetworkStatus(ip=ips[0] if ips else "",
                                      additional_ips=[v1.PodIP(ip=ip) for ip in ips[1:]])


def _labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


class RuntimeServicer:
    def __init__(self, config: Config, sandboxes: SandboxService, containers: ContainerService,
                 images: ImageService, stats: StatsService,
                 events: EventBroker[v1.ContainerEventResponse], streams: StreamUrls) -> None:
        self._streams = streams
        self._config = config
        self._sandboxes = sandboxes
        self._containers = containers
        self._images = images
        self._stats = stats
        self._metrics = MetricsCollector(stats)
        self._events = events

    # --- runtime ---------------------------------------------------------------------------

    def Version(self, request: v1.VersionRequest) -> v1.VersionResponse:
        return v1.VersionResponse(version=KUBELET_API_VERSION, runtime_name=RUNTIME_NAME,
                                  runtime_version=__version__, runtime_api_version="v1")

    def VersionAlpha(self, request: v1.VersionRequest) -> v1.VersionResponse:
        response = self.Version(request)
        response.runtime_api_version = "v1alpha2"
        return response

    def Status(self, request: v1.StatusRequest) -> v1.StatusResponse:
        response = v1.StatusResponse(status=v1.RuntimeStatus(conditions=[
            v1.RuntimeCondition(type="RuntimeReady", status=True),
        ]))
        network = self._sandboxes.network.status()
        response.status.conditions.add(type="NetworkReady", status=network.ready,
                                       reason=network.reason, message=network.message)
        handlers = [""] + sorted(self._config.runtimes)
        for name in handlers:
            handler = self._config.handler(name)
            response.runtime_handlers.add(name=name, features=v1.RuntimeHandlerFeatures(
                recursive_read_only_mounts=handler_features.recursive_read_only(handler),
                user_namespaces=handler_features.user_namespaces(handler)))
        response.features.supplemental_groups_policy = True
        if request.verbose:
            response.info["config"] = json.dumps({
                "root": str(self._config.root), "state": str(self._config.state),
                "sandboxImage": self._config.sandbox_image,
                "cgroupDriver": "cgroupfs",
                "runtimes": {n: h.binary or "in-tree" for n, h in self._config.runtimes.items()},
            })
        return response

    def RuntimeConfig(self, request: v1.RuntimeConfigRequest) -> v1.RuntimeConfigResponse:
        return v1.RuntimeConfigResponse(linux=v1.LinuxRuntimeConfiguration(
            cgroup_driver=v1.CGROUPFS))

    def UpdateRuntimeConfig(
        self, request: v1.UpdateRuntimeConfigRequest
    ) -> v1.UpdateRuntimeConfigResponse:
        self._sandboxes.network.set_pod_cidr(request.runtime_config.network_config.pod_cidr)
        return v1.UpdateRuntimeConfigResponse()

    # --- sandboxes -------------------------------------------------------------------------

    def RunPodSandbox(self, request: v1.RunPodSandboxRequest) -> v1.RunPodSandboxResponse:
        sandbox_id = self._sandboxes.run(request.config, request.runtime_handler)
        return v1.RunPodSandboxResponse(pod_sandbox_id=sandbox_id)

    def StopPodSandbox(self, request: v1.StopPodSandboxRequest) -> v1.StopPodSandboxResponse:
        self._sandboxes.stop(request.pod_sandbox_id)
        return v1.StopPodSandboxResponse()

    def RemovePodSandbox(
        self, request: v1.RemovePodSandboxRequest
    ) -> v1.RemovePodSandboxResponse:
        self._sandboxes.remove(request.pod_sandbox_id)
        return v1.RemovePodSandboxResponse()

    def PodSandboxStatus(
        self, request: v1.PodSandboxStatusRequest
    ) -> v1.PodSandboxStatusResponse:
        sandbox = self._sandboxes.get(request.pod_sandbox_id)
        response = v1.PodSandboxStatusResponse(status=_sandbox_status(sandbox),
                                               timestamp=time.time_ns())
        if request.verbose:
            response.info["info"] = json.dumps({
                "pid": sandbox.status.pid, "netnsPath": sandbox.netns_path,
                "cgroupsPath": sandbox.cgroups_path, "image": sandbox.image_id,
                "runtimeHandler": sandbox.runtime_handler,
            })
        return response

    def _pod_sandboxes(self, f: v1.PodSandboxFilter) -> Iterator[v1.PodSandbox]:
        for sandbox in self._sandboxes.list():
            if f.id and not sandbox.id.startswith(f.id):
                continue
            if f.HasField("state") and _sandbox_state(sandbox) != f.state.state:
                continue
            if not _labels_match(f.label_selector, sandbox.config.labels):
                continue
            yield v1.PodSandbox(
                id=sandbox.id, metadata=sandbox.config.metadata, state=_sandbox_state(sandbox),
                created_at=sandbox.created_at, labels=sandbox.config.labels,
                annotations=sandbox.config.annotations,
                runtime_handler=sandbox.runtime_handler)

    def ListPodSandbox(self, request: v1.ListPodSandboxRequest) -> v1.ListPodSandboxResponse:
        return v1.ListPodSandboxResponse(items=self._pod_sandboxes(request.filter))

    def StreamPodSandboxes(self, request: v1.StreamPodSandboxesRequest,
                           context: grpc.ServicerContext) -> Iterator[Message]:
        return pages(self._pod_sandboxes(request.filter), v1.StreamPodSandboxesResponse,
                     "pod_sandboxes")

    # --- containers ------------------------------------------------------------------------

    def CreateContainer(self, request: v1.CreateContainerRequest) -> v1.CreateContainerResponse:
        container_id = self._containers.create(request.pod_sandbox_id, request.config,
                                               request.sandbox_config)
        return v1.CreateContainerResponse(container_id=container_id)

    def StartContainer(self, request: v1.StartContainerRequest) -> v1.StartContainerResponse:
        self._containers.start(request.container_id)
        return v1.StartContainerResponse()

    def StopContainer(self, request: v1.StopContainerRequest) -> v1.StopContainerResponse:
        self._containers.stop(request.container_id, float(request.timeout))
        return v1.StopContainerResponse()

    def RemoveContainer(self, request: v1.RemoveContainerRequest) -> v1.RemoveContainerResponse:
        self._containers.remove(request.container_id)
        return v1.RemoveContainerResponse()

    def _list_containers(self, f: v1.ContainerFilter) -> Iterator[v1.Container]:
        sandbox_id = None
        if f.pod_sandbox_id:
            sandbox_id = self._sandbox_id_or_none(f.pod_sandbox_id)
            if sandbox_id is None:
                return
        for c in self._containers.list(sandbox_id):
            if f.id and not c.id.startswith(f.id):
                continue
            if f.HasField("state") and c.status.state != f.state.state:
                continue
            if not _labels_match(f.label_selector, c.config.labels):
                continue
            yield v1.Container(
                id=c.id, pod_sandbox_id=c.sandbox_id, metadata=c.config.metadata,
                image=v1.ImageSpec(image=c.image_ref,
                                   user_specified_image=c.config.image.user_specified_image),
                image_ref=c.image_id, state=c.status.state, created_at=c.created_at,
                labels=c.config.labels, annotations=c.config.annotations, image_id=c.image_id)

    def ListContainers(self, request: v1.ListContainersRequest) -> v1.ListContainersResponse:
        return v1.ListContainersResponse(containers=self._list_containers(request.filter))

    def StreamContainers(self, request: v1.StreamContainersRequest,
                         context: grpc.ServicerContext) -> Iterator[Message]:
        return pages(self._list_containers(request.filter), v1.StreamContainersResponse,
                     "containers")

    def ContainerStatus(
        self, request: v1.ContainerStatusRequest
    ) -> v1.ContainerStatusResponse:
        c = self._containers.get(request.container_id)
        response = v1.ContainerStatusResponse(status=self._container_status(c))
        if request.verbose:
            response.info["info"] = json.dumps({
                "pid": c.status.pid, "sandboxID": c.sandbox_id,
                "runtimeHandler": c.runtime_handler, "imageRef": c.image_ref,
            })
        return response

    def ExecSync(self, request: v1.ExecSyncRequest) -> v1.ExecSyncResponse:
        result = self._containers.exec_sync(request.container_id, list(request.cmd),
                                            float(request.timeout))
        return v1.ExecSyncResponse(stdout=result.stdout, stderr=result.stderr,
                                   exit_code=result.exit_code)

    # --- streaming: a URL on the streaming server, redeemed once when the client connects ---

    def Exec(self, request: v1.ExecRequest) -> v1.ExecResponse:
        return v1.ExecResponse(url=self._streams.exec_url(ExecRequest(
            container_id=request.container_id, cmd=tuple(request.cmd), tty=request.tty,
            stdin=request.stdin, stdout=request.stdout, stderr=request.stderr)))

    def Attach(self, request: v1.AttachRequest) -> v1.AttachResponse:
        return v1.AttachResponse(url=self._streams.attach_url(AttachRequest(
            container_id=request.container_id, tty=request.tty, stdin=request.stdin,
            stdout=request.stdout, stderr=request.stderr)))

    def PortForward(self, request: v1.PortForwardRequest) -> v1.PortForwardResponse:
        return v1.PortForwardResponse(url=self._streams.port_forward_url(PortForwardRequest(
            pod_sandbox_id=request.pod_sandbox_id, ports=tuple(request.port))))

    def UpdateContainerResources(
        self, request: v1.UpdateContainerResourcesRequest
    ) -> v1.UpdateContainerResourcesResponse:
        self._containers.update_resources(request.container_id, request.linux)
        return v1.UpdateContainerResourcesResponse()

    def UpdatePodSandboxResources(
        self, request: v1.UpdatePodSandboxResourcesRequest
    ) -> v1.UpdatePodSandboxResourcesResponse:
        # Best effort by contract: kubelet has already resized the pod cgroup itself, and the
        # pause container needs nothing more.
        self._sandboxes.get(request.pod_sandbox_id)
        return v1.UpdatePodSandboxResourcesResponse()

    def ReopenContainerLog(
        self, request: v1.ReopenContainerLogRequest
    ) -> v1.ReopenContainerLogResponse:
        self._containers.reopen_log(request.container_id)
        return v1.ReopenContainerLogResponse()

    # --- stats, metrics, events ------------------------------------------------------------

    def ContainerStats(self, request: v1.ContainerStatsRequest) -> v1.ContainerStatsResponse:
        return v1.ContainerStatsResponse(
            stats=self._stats.container_stats(request.container_id))

    def ListContainerStats(
        self, request: v1.ListContainerStatsRequest
    ) -> v1.ListContainerStatsResponse:
        return v1.ListContainerStatsResponse(
            stats=self._stats.list_container_stats(request.filter))

    def StreamContainerStats(self, request: v1.StreamContainerStatsRequest,
                             context: grpc.ServicerContext) -> Iterator[Message]:
        return pages(self._stats.list_container_stats(request.filter),
                     v1.StreamContainerStatsResponse, "container_stats")

    def PodSandboxStats(self, request: v1.PodSandboxStatsRequest) -> v1.PodSandboxStatsResponse:
        return v1.PodSandboxStatsResponse(stats=self._stats.pod_stats(request.pod_sandbox_id))

    def ListPodSandboxStats(
        self, request: v1.ListPodSandboxStatsRequest
    ) -> v1.ListPodSandboxStatsResponse:
        return v1.ListPodSandboxStatsResponse(stats=self._stats.list_pod_stats(request.filter))

    def StreamPodSandboxStats(self, request: v1.StreamPodSandboxStatsRequest,
                              context: grpc.ServicerContext) -> Iterator[Message]:
        return pages(self._stats.list_pod_stats(request.filter),
                     v1.StreamPodSandboxStatsResponse, "pod_sandbox_stats")

    def ListMetricDescriptors(
        self, request: v1.ListMetricDescriptorsRequest
    ) -> v1.ListMetricDescriptorsResponse:
        return v1.ListMetricDescriptorsResponse(descriptors=descriptors())

    def ListPodSandboxMetrics(
        self, request: v1.ListPodSandboxMetricsRequest
    ) -> v1.ListPodSandboxMetricsResponse:
        return v1.ListPodSandboxMetricsResponse(pod_metrics=self._metrics.pod_metrics())

    def StreamPodSandboxMetrics(self, request: v1.StreamPodSandboxMetricsRequest,
                                context: grpc.ServicerContext) -> Iterator[Message]:
        return pages(self._metrics.pod_metrics(), v1.StreamPodSandboxMetricsResponse,
                     "pod_sandbox_metrics", size=10)

    def GetContainerEvents(self, request: v1.GetEventsRequest,
                           context: grpc.ServicerContext) -> Iterator[Message]:
        subscription = self._events.subscribe()
        context.add_callback(subscription.close)
        try:
            yield from subscription
        except Overflowed as exc:
            raise Unavailable(f"event stream closed: {exc}; subscribe again and relist") from None
        finally:
            subscription.close()

    def render_event(self, event: LifecycleEvent) -> v1.ContainerEventResponse:
        """The pod's status and its containers' statuses as they are when the event is sent."""
        out = v1.ContainerEventResponse(container_id=event.object_id,
                                        container_event_type=v1.ContainerEventType.Value(
                                            f"CONTAINER_{event.kind.name}_EVENT"),
                                        created_at=event.created_at)
        sandbox = self._sandboxes.store.find(event.sandbox_id)
        if sandbox is None:
            out.pod_sandbox_status.id = event.sandbox_id
            out.pod_sandbox_status.state = v1.SANDBOX_NOTREADY
            return out
        out.pod_sandbox_status.CopyFrom(_sandbox_status(self._sandboxes.get(sandbox.id)))
        out.containers_statuses.extend(
            self._container_status(c) for c in self._containers.list(sandbox.id))
        return out

    # --- conversions -----------------------------------------------------------------------

    def _sandbox_id_or_none(self, id_or_prefix: str) -> str | None:
        sandbox = self._sandboxes.store.find(id_or_prefix)
        return sandbox.id if sandbox else None

    def _container_status(self, c: Container) -> v1.ContainerStatus:
        image = self._images.get(c.image_id)
        image_ref = image.repo_digests[0] if image and image.repo_digests else c.image_id
        status = v1.ContainerStatus(
            id=c.id, metadata=c.config.metadata, state=c.status.state, created_at=c.created_at,
            started_at=c.status.started_at, finished_at=c.status.finished_at,
            exit_code=c.status.exit_code,
            image=v1.ImageSpec(image=c.image_ref,
                               user_specified_image=c.config.image.user_specified_image),
            image_ref=image_ref, reason=c.status.reason, message=c.status.message,
            labels=c.config.labels, annotations=c.config.annotations,
            mounts=c.config.mounts, log_path=c.log_path, image_id=c.image_id,
            stop_signal=c.config.stop_signal)
        spec = self._containers.oci_spec(c)
        if spec is not None:
            _fill_resources(status.resources.linux, spec)
            user = spec["process"]["user"]
            status.user.linux.uid, status.user.linux.gid = user["uid"], user["gid"]
            status.user.linux.supplemental_groups.extend(user.get("additionalGids", ()))
        return status


def _fill_resources(out: v1.LinuxContainerResources, spec: Mapping[str, Any]) -> None:
    """What kubelet's in-place resize reads back: the limits in force."""
    resources = spec.get("linux", {}).get("resources", {})
    cpu, memory = resources.get("cpu", {}), resources.get("memory", {})
    out.cpu_shares = cpu.get("shares", 0)
    out.cpu_quota = cpu.get("quota", 0)
    out.cpu_period = cpu.get("period", 0)
    out.cpuset_cpus = cpu.get("cpus", "")
    out.cpuset_mems = cpu.get("mems", "")
    out.memory_limit_in_bytes = memory.get("limit", 0)
    out.memory_swap_limit_in_bytes = memory.get("swap", 0)
    out.oom_score_adj = spec.get("process", {}).get("oomScoreAdj", 0)
    out.unified.update(resources.get("unified", {}))


def _sandbox_state(sandbox: Sandbox) -> v1.PodSandboxState:
    return v1.SANDBOX_READY if sandbox.status.state == READY else v1.SANDBOX_NOTREADY


def _sandbox_status(sandbox: Sandbox) -> v1.PodSandboxStatus:
    opts = sandbox.config.linux.security_context.namespace_options
    return v1.PodSandboxStatus(
        id=sandbox.id, metadata=sandbox.config.metadata, state=_sandbox_state(sandbox),
        created_at=sandbox.created_at, network=_network_status(sandbox),
        linux=v1.LinuxPodSandboxStatus(namespaces=v1.Namespace(options=opts)),
        labels=sandbox.config.labels, annotations=sandbox.config.annotations,
        runtime_handler=sandbox.runtime_handler)
