"""Application containers of a pod: create, start, stop, remove, status, exec."""

from cri.container.model import Container, ContainerStatus
from cri.container.service import ContainerService
from cri.container.store import ContainerStore

__all__ = ["Container", "ContainerService", "ContainerStatus", "ContainerStore"]
