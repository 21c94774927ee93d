"""Exceptions: one class per gRPC status code the service answers.

Every error the SDK raises is a SafeEvalError carrying the gRPC code and the
server's message. A run that hits a limit is not an error: its Result says
why it ended (Result.reason).
"""
from typing import Dict, Optional, Type

import grpc


class SafeEvalError(Exception):
    """Base of every safeeval error.

    Attributes:
        code: the grpc.StatusCode of the answer (INTERNAL for a reply the SDK
            could not understand).
        details: the server's message (or the SDK's, for a check made before
            any call).
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, details: str, code: Optional[grpc.StatusCode] = None) -> None:
        if code is not None:
            self.code = code
        self.details = details
        super().__init__("%s: %s" % (self.code.name, details))


class InvalidArgument(SafeEvalError, ValueError):
    """INVALID_ARGUMENT: a field is malformed; the message names it."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class SandboxNotFound(SafeEvalError, LookupError):
    """NOT_FOUND: the sandbox id is unknown (destroyed, reaped, or never made)."""

    code = grpc.StatusCode.NOT_FOUND


class ResourceExhausted(SafeEvalError):
    """RESOURCE_EXHAUSTED: a request too large, a full queue, too many sandboxes,
    or the host's memory budget spent; the message says which."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(SafeEvalError):
    """FAILED_PRECONDITION: an image cannot be built (pip's lines are in the
    message) or the Python version cannot be had."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class VersionNotAvailable(FailedPrecondition):
    """The server has no Python of the version asked for.

    Attributes:
        version: the version asked for.
        available: the versions the server offers ("3.11", "3.13", ...), or
            None when the server cannot say (it predates GetServerInfo).
    """

    def __init__(self, details: str, version: str, available: Optional[list]) -> None:
        super().__init__(details)
        self.version = version
        self.available = available


class Unavailable(SafeEvalError, ConnectionError):
    """UNAVAILABLE: the server (or its Docker engine) does not answer, or it is
    shutting down."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(SafeEvalError, TimeoutError):
    """DEADLINE_EXCEEDED: the call's `timeout` passed (a run's own wall-time
    limit is not this: it ends the run with Result.reason WALL_TIMEOUT)."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Aborted(SafeEvalError):
    """ABORTED: the call raced another on the same sandbox; retrying is safe."""

    code = grpc.StatusCode.ABORTED


class PermissionDenied(SafeEvalError, PermissionError):
    """PERMISSION_DENIED: the identity may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(PermissionDenied):
    """UNAUTHENTICATED: no token, or a wrong one (see `token` / SAFEEVAL_TOKEN)."""

    code = grpc.StatusCode.UNAUTHENTICATED


class Unimplemented(SafeEvalError, NotImplementedError):
    """UNIMPLEMENTED: the server does not offer this method (an older server)."""

    code = grpc.StatusCode.UNIMPLEMENTED


class Cancelled(SafeEvalError):
    """CANCELLED: the call was cancelled (by this client or the server)."""

    code = grpc.StatusCode.CANCELLED


class Internal(SafeEvalError):
    """INTERNAL (or UNKNOWN, DATA_LOSS): the server failed, or its reply made no
    sense to the SDK."""

    code = grpc.StatusCode.INTERNAL


_BY_CODE: Dict[grpc.StatusCode, Type[SafeEvalError]] = {
    c.code: c
    for c in (InvalidArgument, SandboxNotFound, ResourceExhausted, FailedPrecondition,
              Unavailable, DeadlineExceeded, Aborted, PermissionDenied, Unauthenticated,
              Unimplemented, Cancelled, Internal)
}


def error_from_rpc(e: grpc.RpcError) -> SafeEvalError:
    """The SafeEvalError for a failed call."""
    code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
    details = (e.details() if hasattr(e, "details") else None) or str(e)
    cls = _BY_CODE.get(code, SafeEvalError)
    return cls(details, code)
