"""A Kubernetes CRI runtime: gRPC servers over sandbox, container, image and OCI domains."""

__version__ = "0.1.0"
