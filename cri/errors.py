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
