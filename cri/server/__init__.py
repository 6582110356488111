"""The gRPC front: one dispatch table serving both CRI API versions from one implementation."""

from cri.server.grpc_server import GrpcServer

__all__ = ["GrpcServer"]
