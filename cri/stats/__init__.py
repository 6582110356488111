"""Resource usage of containers and pods: what ContainerStats, PodSandboxStats and the
cAdvisor-style metrics report. Reads cgroups through the executor's cgroup manager, the pod's
network counters from its namespace, and the writable layer from disk; never forks."""

from cri.stats.service import StatsService

__all__ = ["StatsService"]
