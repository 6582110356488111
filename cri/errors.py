"""One error hierarchy for the whole daemon.

Domain code raises these; the gRPC dispatch (`cri.server.dispatch`) is the one place that turns
them into statuses. Anything that is not a `CriError` becomes INTERNAL with its traceback logged.
"""

from __future__ import annotations

import grpc


class CriError(Exception):
    """Base of every error that maps to a gRPC status."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(CriError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(CriError):
    code = grpc.StatusCode.ALREADY_EXISTS


class InvalidArgument(CriError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(CriError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(CriError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(CriError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(CriError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(CriError):
    code = grpc.StatusCode.INTERNAL


# --- across a process boundary (the pull helper reports its errors this way) ---------------------

_BY_CODE: dict[str, type[CriError]] = {
    cls.code.name: cls
    for cls in (NotFound, AlreadyExists, InvalidArgument, FailedPrecondition, Unavailable,
                DeadlineExceeded, Unimplemented, Internal)
}


def error_to_wire(exc: BaseException) -> dict[str, str]:
    """{"code": ..., "message": ...}; anything not a CriError travels as INTERNAL."""
    if isinstance(exc, CriError):
        return {"code": exc.code.name, "message": exc.message}
    return {"code": "INTERNAL", "message": f"{type(exc).__name__}: {exc}"}


def error_from_wire(wire: dict[str, str]) -> CriError:
    return _BY_CODE.get(wire.get("code", ""), Internal)(str(wire.get("message", "")))
