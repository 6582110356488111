"""Errors of the daemon-side shim client.

NOTE: these do not derive from `cri.errors.CriError` on purpose: that module imports grpc, and
every shim process imports this package; a shim per container should not pay for grpc. The
container domain maps them to CRI errors where it calls the client.
"""

from __future__ import annotations


class ShimError(Exception):
    """Base of everything the shim client raises."""


class ShimStartError(ShimError):
    """The shim could not create the container; nothing was left running."""


class TaskRefused(ShimStartError):
    """The OCI runtime refused to create the task: what the spec asks for cannot be done (a cwd
    that is a file, an executable that is not there, a mount that fails)."""


class ShimStartTimeout(ShimStartError):
    """The shim did not report in time. It was killed; the OCI runtime may still hold state for
    the container id, which the caller removes with its usual delete path."""


class ShimUnavailable(ShimError):
    """No shim answers on the control socket: it has exited (the container is gone) or never ran."""


class ShimRequestError(ShimError):
    """The shim answered a control request with an error."""
