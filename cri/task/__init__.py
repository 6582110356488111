"""Tasks: the running process of a sandbox or container, under its shim and an OCI runtime."""

from cri.task.runner import ExecResult, TaskExit, TaskRunner

__all__ = ["ExecResult", "TaskExit", "TaskRunner"]
