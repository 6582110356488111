"""Errors of the OCI executor.

Deliberately independent of gRPC (`cri.errors` imports grpc): the CLI and the shim import this
package and must start fast. The daemon maps these onto `CriError`s at its own boundary.
"""

from __future__ import annotations


class OciError(Exception):
    """Base of every error the executor raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ContainerNotFound(OciError):
    pass


class ContainerExists(OciError):
    pass


class InvalidSpec(OciError):
    """config.json is malformed or asks for something impossible (before or during create)."""


class InvalidState(OciError):
    """The operation is not allowed in the container's current status."""


class Unsupported(OciError):
    """A valid spec feature this executor does not implement yet (user namespaces, consoles...)."""


class InitFailed(OciError):
    """The container init failed during set-up; the message is the init's own error text."""


#: Error classes the init may name over the sync pipe, so the creator re-raises the same type.
BY_NAME: dict[str, type[OciError]] = {
    cls.__name__: cls
    for cls in (
        OciError,
        ContainerNotFound,
        ContainerExists,
        InvalidSpec,
        InvalidState,
        Unsupported,
        InitFailed,
    )
}
