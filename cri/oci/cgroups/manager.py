"""The interface every cgroup manager implements (v1 and v2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .stats import CgroupStats


class CgroupManager(Protocol):
    version: int

    @property
    def paths(self) -> dict[str, str]:
        """Hierarchy name ("" for v2) -> absolute directory of the container's cgroup."""
        ...

    def create(self, resources: Mapping[str, Any]) -> None: ...
    def add(self, pid: int) -> None:
        """Move pid (0: the calling process) into the cgroup in every hierarchy."""
        ...

    def apply(self, resources: Mapping[str, Any]) -> None: ...
    def update(self, resources: Mapping[str, Any]) -> None:
        """New limits on a live cgroup (`update`): everything but devices."""
        ...

    def destroy(self) -> None: ...
    def pids(self) -> list[int]: ...
    def freezer_state(self) -> str | None:
        """freezer.FROZEN, FREEZING or THAWED; None without a freezer."""
        ...

    def freeze(self) -> None:
        """Freeze every process and wait until they are; FreezeFailed otherwise (thawed)."""
        ...

    def thaw(self) -> None: ...
    def stats(self) -> CgroupStats:
        """What the cgroup has used (cri.stats reads it for ContainerStats and friends)."""
        ...
