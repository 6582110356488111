"""The dispatch table: both API versions reach one servicer; errors become the right statuses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cri.api.runtime.v1 import api_pb2 as v1
from cri.api.runtime.v1 import api_pb2_grpc as v1_grpc
from cri.api.runtime.v1alpha2 import api_pb2 as alpha
from cri.api.runtime.v1alpha2 import api_pb2_grpc as alpha_grpc
from cri.errors import NotFound
from cri.server import GrpcServer


class Runtime:
    def Version(self, request: v1.VersionRequest) -> v1.VersionResponse:
        return v1.VersionResponse(version="0.1.0", runtime_name="t", runtime_api_version="v1")

    def VersionAlpha(self, request: v1.VersionRequest) -> v1.VersionResponse:
        return v1.VersionResponse(version="0.1.0", runtime_name="t",
                                  runtime_api_version="v1alpha2")

    def ContainerStatus(self, request: v1.ContainerStatusRequest) -> v1.ContainerStatusResponse:
        raise NotFound(f"container {request.container_id!r} not found")

    def ExecSync(self, request: v1.ExecSyncRequest) -> v1.ExecSyncResponse:
        raise RuntimeError("bug")

    def CreateContainer(self, request: v1.CreateContainerRequest) -> v1.CreateContainerResponse:
        env = request.config.envs[0]
        return v1.CreateContainerResponse(container_id=f"{env.key}={env.value.decode()}")


class Images:
    pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Path]:
    ready = [False]
    srv = GrpcServer(tmp_path / "s.sock", Runtime(), Images(), lambda: ready[0], workers=2)
    srv.start()
    channel = grpc.insecure_channel(f"unix://{tmp_path / 's.sock'}")
    with pytest.raises(grpc.RpcError) as info:
        v1_grpc.RuntimeServiceStub(channel).Version(v1.VersionRequest())
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    channel.close()
    ready[0] = True
    assert oct((tmp_path / "s.sock").stat().st_mode & 0o777) == "0o660"
    yield tmp_path / "s.sock"
    srv.stop(0)


def test_both_versions_reach_one_servicer(server: Path) -> None:
    with grpc.insecure_channel(f"unix://{server}") as channel:
        assert v1_grpc.RuntimeServiceStub(channel).Version(
            v1.VersionRequest()).runtime_api_version == "v1"
        alpha_stub = alpha_grpc.RuntimeServiceStub(channel)
        assert alpha_stub.Version(alpha.VersionRequest()).runtime_api_version == "v1alpha2"
        # An alpha request (string env value) parses as the v1 message (bytes value).
        reply = alpha_stub.CreateContainer(alpha.CreateContainerRequest(
            config=alpha.ContainerConfig(envs=[alpha.KeyValue(key="K", value="v")])))
        assert reply.container_id == "K=v"


def test_errors_map_to_statuses(server: Path) -> None:
    with grpc.insecure_channel(f"unix://{server}") as channel:
        stub = v1_grpc.RuntimeServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ContainerStatus(v1.ContainerStatusRequest(container_id="x"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "'x' not found" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            stub.ExecSync(v1.ExecSyncRequest(container_id="x"))
        assert info.value.code() == grpc.StatusCode.INTERNAL
        with pytest.raises(grpc.RpcError) as info:
            stub.Attach(v1.AttachRequest())
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "Attach is not implemented" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            v1_grpc.ImageServiceStub(channel).ListImages(v1.ListImagesRequest())
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_the_v1alpha2_method_list_matches_its_proto() -> None:
    """The server serves v1alpha2 from a list of names and v1's descriptors: each listed method
    must be v1alpha2's, in full, with v1's messages of the same names and the same streaming."""
    from cri.server.grpc_server import V1ALPHA2_METHODS

    for service_name, names in V1ALPHA2_METHODS.items():
        ours = alpha.DESCRIPTOR.services_by_name[service_name]
        theirs = v1.DESCRIPTOR.services_by_name[service_name]
        assert names == tuple(m.name for m in ours.methods)
        for method in ours.methods:
            twin = theirs.methods_by_name[method.name]
            assert (method.input_type.name, method.output_type.name, method.server_streaming) == (
                twin.input_type.name, twin.output_type.name, twin.server_streaming)
