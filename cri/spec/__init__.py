"""CRI configs in, OCI runtime specs out: what a pod or container looks like to the executor."""

from cri.spec.container import ContainerSpecInput, container_spec
from cri.spec.sandbox import SandboxSpecInput, sandbox_spec

__all__ = ["ContainerSpecInput", "SandboxSpecInput", "container_spec", "sandbox_spec"]
