"""Checks of the CRI API protos and the committed Python stubs.

Expected values are taken from the published k8s.io/cri-api protos
(v1: tag kubernetes-1.36.3, v1alpha2: tag kubernetes-1.25.0), not from our .proto files.
"""

from __future__ import annotations

import pytest
from google.protobuf import descriptor as _descriptor
from google.protobuf import json_format

from cri.api import generate
from cri.api.runtime.v1 import api_pb2 as v1
from cri.api.runtime.v1 import api_pb2_grpc as v1_grpc
from cri.api.runtime.v1alpha2 import api_pb2 as v1alpha2
from cri.api.runtime.v1alpha2 import api_pb2_grpc as v1alpha2_grpc

V1_RUNTIME_RPCS = [
    "Version",
    "RunPodSandbox",
    "StopPodSandbox",
    "RemovePodSandbox",
    "PodSandboxStatus",
    "ListPodSandbox",
    "StreamPodSandboxes",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "RemoveContainer",
    "ListContainers",
    "StreamContainers",
    "ContainerStatus",
    "UpdateContainerResources",
    "ReopenContainerLog",
    "ExecSync",
    "Exec",
    "Attach",
    "PortForward",
    "ContainerStats",
    "ListContainerStats",
    "StreamContainerStats",
    "PodSandboxStats",
    "ListPodSandboxStats",
    "StreamPodSandboxStats",
    "UpdateRuntimeConfig",
    "Status",
    "CheckpointContainer",
    "GetContainerEvents",
    "ListMetricDescriptors",
    "ListPodSandboxMetrics",
    "StreamPodSandboxMetrics",
    "RuntimeConfig",
    "UpdatePodSandboxResources",
]
V1_IMAGE_RPCS = [
    "ListImages",
    "StreamImages",
    "ImageStatus",
    "PullImage",
    "RemoveImage",
    "ImageFsInfo",
]
V1_SERVER_STREAMING = {
    "StreamPodSandboxes",
    "StreamContainers",
    "StreamContainerStats",
    "StreamPodSandboxStats",
    "StreamPodSandboxMetrics",
    "GetContainerEvents",
    "StreamImages",
}

V1ALPHA2_RUNTIME_RPCS = [
    "Version",
    "RunPodSandbox",
    "StopPodSandbox",
    "RemovePodSandbox",
    "PodSandboxStatus",
    "ListPodSandbox",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "RemoveContainer",
    "ListContainers",
    "ContainerStatus",
    "UpdateContainerResources",
    "ReopenContainerLog",
    "ExecSync",
    "Exec",
    "Attach",
    "PortForward",
    "ContainerStats",
    "ListContainerStats",
    "PodSandboxStats",
    "ListPodSandboxStats",
    "UpdateRuntimeConfig",
    "Status",
]
V1ALPHA2_IMAGE_RPCS = ["ListImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo"]


# --------------------------------------------------------------------------- (a) drift


def test_committed_stubs_match_regenerated():
    import grpc_tools  # noqa: F401 - a test dependency: missing, the drift check must fail loudly

    version = v1_grpc.GRPC_GENERATED_VERSION
    assert generate.diff_against_committed() == [], (
        f"stubs differ from a fresh generation (committed with grpcio-tools {version}); "
        "if the protos changed, run: python -m cri.api.generate"
    )


# --------------------------------------------------------------------------- (b) services


class _RecordingChannel:
    """Stands in for grpc.Channel and records the method paths a stub binds."""

    def __init__(self):
        self.paths: list[tuple[str, str]] = []

    def _record(self, kind):
        def bind(path, *args, **kwargs):
            self.paths.append((kind, path))
            return object()

        return bind

    def __getattr__(self, kind):
        if kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            return self._record(kind)
        raise AttributeError(kind)


def _method_names(module, service):
    return [m.name for m in module.DESCRIPTOR.services_by_name[service].methods]


@pytest.mark.parametrize(
    "module,package,runtime_rpcs,image_rpcs",
    [
        (v1, "runtime.v1", V1_RUNTIME_RPCS, V1_IMAGE_RPCS),
        (v1alpha2, "runtime.v1alpha2", V1ALPHA2_RUNTIME_RPCS, V1ALPHA2_IMAGE_RPCS),
    ],
    ids=["v1", "v1alpha2"],
)
def test_service_rpcs(module, package, runtime_rpcs, image_rpcs):
    assert module.DESCRIPTOR.package == package
    assert sorted(module.DESCRIPTOR.services_by_name) == ["ImageService", "RuntimeService"]
    assert _method_names(module, "RuntimeService") == runtime_rpcs
    assert _method_names(module, "ImageService") == image_rpcs


def test_rpc_counts():
    assert (len(V1_RUNTIME_RPCS), len(V1_IMAGE_RPCS)) == (35, 6)
    assert (len(V1ALPHA2_RUNTIME_RPCS), len(V1ALPHA2_IMAGE_RPCS)) == (24, 5)
    assert set(V1_RUNTIME_RPCS) - set(V1ALPHA2_RUNTIME_RPCS) == {
        "CheckpointContainer",
        "GetContainerEvents",
        "StreamPodSandboxes",
        "StreamContainers",
        "StreamContainerStats",
        "StreamPodSandboxStats",
        "ListMetricDescriptors",
        "ListPodSandboxMetrics",
        "StreamPodSandboxMetrics",
        "RuntimeConfig",
        "UpdatePodSandboxResources",
    }


def test_v1_streaming_kinds():
    for service in ("RuntimeService", "ImageService"):
        for m in v1.DESCRIPTOR.services_by_name[service].methods:
            assert not m.client_streaming, m.name
            assert m.server_streaming == (m.name in V1_SERVER_STREAMING), m.name


@pytest.mark.parametrize(
    "grpc_module,package,rpcs",
    [
        (v1_grpc, "runtime.v1", {"RuntimeService": V1_RUNTIME_RPCS, "ImageService": V1_IMAGE_RPCS}),
        (
            v1alpha2_grpc,
            "runtime.v1alpha2",
            {"RuntimeService": V1ALPHA2_RUNTIME_RPCS, "ImageService": V1ALPHA2_IMAGE_RPCS},
        ),
    ],
    ids=["v1", "v1alpha2"],
)
def test_grpc_wire_method_paths(grpc_module, package, rpcs):
    streaming = V1_SERVER_STREAMING if package == "runtime.v1" else set()
    for service, names in rpcs.items():
        channel = _RecordingChannel()
        getattr(grpc_module, f"{service}Stub")(channel)
        expected = [
            ("unary_stream" if n in streaming else "unary_unary", f"/{package}.{service}/{n}")
            for n in names
        ]
        assert sorted(channel.paths) == sorted(expected)
        assert hasattr(grpc_module, f"{service}Servicer")
        assert hasattr(grpc_module, f"add_{service}Servicer_to_server")


# --------------------------------------------------------------------------- (c) field numbers

# (message, field, number) from the published v1 proto (kubernetes-1.36.3).
V1_FIELD_NUMBERS = [
    ("ContainerConfig", "log_path", 11),
    ("ContainerConfig", "CDI_devices", 17),
    ("ContainerConfig", "stop_signal", 18),
    ("PodSandboxConfig", "log_directory", 3),
    ("PodSandboxConfig", "dns_config", 4),
    ("PodSandboxConfig", "windows", 9),
    ("Mount", "recursive_read_only", 8),
    ("Mount", "image", 9),
    ("Mount", "image_sub_path", 10),
    ("ContainerStatus", "resources", 16),
    ("ContainerStatus", "image_id", 17),
    ("ContainerStatus", "user", 18),
    ("ContainerStatus", "stop_signal", 19),
    ("Container", "image_id", 10),
    ("StatusResponse", "runtime_handlers", 3),
    ("StatusResponse", "features", 4),
    ("RuntimeFeatures", "user_namespaces_host_network", 2),
    ("ImageSpec", "user_specified_image", 18),
    ("ImageSpec", "runtime_handler", 19),
    ("ImageSpec", "image_ref", 20),
    ("LinuxContainerResources", "unified", 9),
    ("LinuxContainerResources", "memory_swap_limit_in_bytes", 10),
    ("LinuxContainerSecurityContext", "run_as_group", 12),
    ("LinuxContainerSecurityContext", "supplemental_groups_policy", 17),
    ("LinuxSandboxSecurityContext", "supplemental_groups_policy", 11),
    ("RuntimeConfigResponse", "linux", 1),
    ("LinuxRuntimeConfiguration", "cgroup_driver", 1),
    ("PodSandboxStatusResponse", "containers_statuses", 3),
    ("PodSandboxStatusResponse", "timestamp", 4),
    ("ContainerEventResponse", "containers_statuses", 5),
    ("ImageFsInfoResponse", "container_filesystems", 2),
    ("StreamPodSandboxesResponse", "pod_sandboxes", 1),
    ("StreamContainerStatsResponse", "container_stats", 1),
    ("StreamPodSandboxStatsResponse", "pod_sandbox_stats", 1),
    ("StreamPodSandboxMetricsResponse", "pod_sandbox_metrics", 1),
    ("UpdatePodSandboxResourcesRequest", "resources", 3),
    ("ContainerStats", "io", 6),
    ("MemoryUsage", "psi", 8),
    ("WindowsContainerResources", "affinity_cpus", 6),
    ("NamespaceOption", "userns_options", 5),
]

# (message, field, number) from the published v1alpha2 proto (kubernetes-1.25.0).
V1ALPHA2_FIELD_NUMBERS = [
    ("ContainerConfig", "log_path", 11),
    ("PodSandboxConfig", "log_directory", 3),
    ("ContainerStatus", "resources", 16),
    ("LinuxContainerResources", "unified", 9),
    ("NamespaceOption", "userns_options", 5),
    ("Image", "pinned", 8),
    ("LinuxPodSandboxConfig", "resources", 5),
]


@pytest.mark.parametrize("message,field,number", V1_FIELD_NUMBERS, ids=lambda x: str(x))
def test_v1_field_numbers(message, field, number):
    assert v1.DESCRIPTOR.message_types_by_name[message].fields_by_name[field].number == number


@pytest.mark.parametrize("message,field,number", V1ALPHA2_FIELD_NUMBERS, ids=lambda x: str(x))
def test_v1alpha2_field_numbers(message, field, number):
    assert v1alpha2.DESCRIPTOR.message_types_by_name[message].fields_by_name[field].number == number


def test_v1alpha2_lacks_newer_fields():
    assert "image_id" not in v1alpha2.ContainerStatus.DESCRIPTOR.fields_by_name
    assert "recursive_read_only" not in v1alpha2.Mount.DESCRIPTOR.fields_by_name
    assert "RuntimeConfigResponse" not in v1alpha2.DESCRIPTOR.message_types_by_name


def test_enum_values():
    assert v1.Signal.Value("RUNTIME_DEFAULT") == 0
    assert v1.Signal.Value("SIGTERM") == 23
    assert v1.Signal.Value("SIGKILL") == 13
    assert v1.Signal.Value("SIGRTMAX") == 65
    assert v1.CgroupDriver.Value("SYSTEMD") == 0
    assert v1.CgroupDriver.Value("CGROUPFS") == 1
    assert v1.NamespaceMode.Value("TARGET") == 3
    assert v1.SupplementalGroupsPolicy.Value("Strict") == 1
    assert v1.ContainerEventType.Value("CONTAINER_DELETED_EVENT") == 3
    assert v1.MetricType.Value("GAUGE") == 1
    assert v1.SecurityProfile.ProfileType.Value("Localhost") == 2
    assert v1alpha2.ContainerState.Value("CONTAINER_UNKNOWN") == 3
    assert v1alpha2.MountPropagation.Value("PROPAGATION_BIDIRECTIONAL") == 2


def test_keyvalue_value_types():
    # Upstream changed KeyValue.value from string to bytes in 1.36.2 (same wire type).
    fd = _descriptor.FieldDescriptor
    assert v1.KeyValue.DESCRIPTOR.fields_by_name["value"].type == fd.TYPE_BYTES
    assert v1alpha2.KeyValue.DESCRIPTOR.fields_by_name["value"].type == fd.TYPE_STRING


def test_v1alpha2_is_wire_subset_of_v1():
    """Every v1alpha2 message and field exists in v1 with the same number and wire type."""
    fd = _descriptor.FieldDescriptor
    wire_type = {fd.TYPE_STRING: "len", fd.TYPE_BYTES: "len"}
    for name, msg in v1alpha2.DESCRIPTOR.message_types_by_name.items():
        v1_msg = v1.DESCRIPTOR.message_types_by_name[name]
        for field in msg.fields:
            other = v1_msg.fields_by_name[field.name]
            assert other.number == field.number, (name, field.name)
            assert wire_type.get(other.type, other.type) == wire_type.get(field.type, field.type), (
                name,
                field.name,
            )
            assert field.is_repeated == other.is_repeated, (name, field.name)
    for name, enum in v1alpha2.DESCRIPTOR.enum_types_by_name.items():
        v1_values = {v.name: v.number for v in v1.DESCRIPTOR.enum_types_by_name[name].values}
        assert {v.name: v.number for v in enum.values} == v1_values


# --------------------------------------------------------------------------- (d) round trip


def _v1alpha2_run_pod_sandbox_request():
    a = v1alpha2
    return a.RunPodSandboxRequest(
        runtime_handler="runc",
        config=a.PodSandboxConfig(
            metadata=a.PodSandboxMetadata(
                name="nginx", uid="4b2c-uid", namespace="default", attempt=2
            ),
            hostname="nginx-host",
            log_directory="/var/log/pods/default_nginx_4b2c-uid",
            dns_config=a.DNSConfig(
                servers=["10.96.0.10"], searches=["default.svc.cluster.local"], options=["ndots:5"]
            ),
            port_mappings=[
                a.PortMapping(protocol=a.TCP, container_port=80, host_port=8080, host_ip="0.0.0.0"),
                a.PortMapping(protocol=a.SCTP, container_port=9000),
            ],
            labels={"app": "nginx", "io.kubernetes.pod.name": "nginx"},
            annotations={"kubernetes.io/config.source": "api"},
            linux=a.LinuxPodSandboxConfig(
                cgroup_parent="/kubepods/besteffort/pod4b2c",
                sysctls={"net.ipv4.ip_forward": "1"},
                security_context=a.LinuxSandboxSecurityContext(
                    namespace_options=a.NamespaceOption(
                        network=a.POD,
                        pid=a.CONTAINER,
                        ipc=a.NODE,
                        userns_options=a.UserNamespace(
                            mode=a.POD,
                            uids=[a.IDMapping(host_id=65536, container_id=0, length=65536)],
                            gids=[a.IDMapping(host_id=65536, container_id=0, length=65536)],
                        ),
                    ),
                    selinux_options=a.SELinuxOption(
                        user="system_u", role="system_r", type="spc_t", level="s0"
                    ),
                    run_as_user=a.Int64Value(value=1000),
                    run_as_group=a.Int64Value(value=3000),
                    supplemental_groups=[4000, 5000],
                    seccomp=a.SecurityProfile(
                        profile_type=a.SecurityProfile.Localhost, localhost_ref="prof.json"
                    ),
                    privileged=True,
                ),
                overhead=a.LinuxContainerResources(cpu_shares=10, memory_limit_in_bytes=1 << 20),
                resources=a.LinuxContainerResources(
                    cpu_period=100000,
                    cpu_quota=50000,
                    unified={"memory.high": "1073741824"},
                    hugepage_limits=[a.HugepageLimit(page_size="2MB", limit=1 << 21)],
                    memory_swap_limit_in_bytes=-1,
                ),
            ),
            windows=a.WindowsPodSandboxConfig(
                security_context=a.WindowsSandboxSecurityContext(
                    run_as_username="ContainerUser", host_process=True
                )
            ),
        ),
    )


def test_run_pod_sandbox_request_v1alpha2_to_v1():
    old = _v1alpha2_run_pod_sandbox_request()
    data = old.SerializeToString(deterministic=True)
    new = v1.RunPodSandboxRequest.FromString(data)

    # Every field survives with the same meaning (field names are shared too).
    assert json_format.MessageToDict(new) == json_format.MessageToDict(old)
    assert new.runtime_handler == "runc"
    assert new.config.log_directory == "/var/log/pods/default_nginx_4b2c-uid"
    assert new.config.metadata.attempt == 2
    assert new.config.port_mappings[1].protocol == v1.SCTP
    ns = new.config.linux.security_context.namespace_options
    assert (ns.network, ns.pid, ns.ipc) == (v1.POD, v1.CONTAINER, v1.NODE)
    assert ns.userns_options.uids[0].length == 65536
    assert new.config.linux.security_context.seccomp.profile_type == v1.SecurityProfile.Localhost
    assert new.config.linux.resources.unified["memory.high"] == "1073741824"
    # Nothing was left over as unknown fields: v1 re-serializes to the same bytes, and back.
    assert new.SerializeToString(deterministic=True) == data
    assert v1alpha2.RunPodSandboxRequest.FromString(new.SerializeToString()) == old


def test_create_container_envs_string_to_bytes():
    old = v1alpha2.CreateContainerRequest(
        pod_sandbox_id="sb1",
        config=v1alpha2.ContainerConfig(
            metadata=v1alpha2.ContainerMetadata(name="c", attempt=1),
            image=v1alpha2.ImageSpec(image="docker.io/library/nginx:latest"),
            envs=[v1alpha2.KeyValue(key="GREETING", value="héllo")],
            log_path="c/1.log",
        ),
    )
    new = v1.CreateContainerRequest.FromString(old.SerializeToString())
    assert new.config.log_path == "c/1.log"
    assert new.config.image.image == "docker.io/library/nginx:latest"
    assert new.config.envs[0].key == "GREETING"
    assert new.config.envs[0].value == "héllo".encode()


def test_v1_and_v1alpha2_served_on_one_socket():
    """Both packages register side by side; the method paths keep them apart."""
    import tempfile
    from concurrent import futures

    import grpc

    class V1Runtime(v1_grpc.RuntimeServiceServicer):
        def Version(self, request, context):
            return v1.VersionResponse(
                version="0.1.0", runtime_name="test", runtime_api_version="v1"
            )

    class V1Alpha2Runtime(v1alpha2_grpc.RuntimeServiceServicer):
        def Version(self, request, context):
            return v1alpha2.VersionResponse(
                version="0.1.0", runtime_name="test", runtime_api_version="v1alpha2"
            )

    sock_dir = tempfile.TemporaryDirectory(prefix="cri-")  # short path: sun_path is 108 bytes
    address = f"unix://{sock_dir.name}/cri.sock"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    v1_grpc.add_RuntimeServiceServicer_to_server(V1Runtime(), server)
    v1alpha2_grpc.add_RuntimeServiceServicer_to_server(V1Alpha2Runtime(), server)
    server.add_insecure_port(address)
    server.start()
    try:
        with grpc.insecure_channel(address) as channel:
            got_v1 = v1_grpc.RuntimeServiceStub(channel).Version(
                v1.VersionRequest(version="v1"), timeout=5
            )
            got_a2 = v1alpha2_grpc.RuntimeServiceStub(channel).Version(
                v1alpha2.VersionRequest(), timeout=5
            )
            assert got_v1.runtime_api_version == "v1"
            assert got_a2.runtime_api_version == "v1alpha2"
            with pytest.raises(grpc.RpcError) as err:
                v1_grpc.ImageServiceStub(channel).ImageFsInfo(v1.ImageFsInfoRequest(), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        server.stop(None)
        sock_dir.cleanup()
