"""Typed exceptions of the edgespec SDK, one per gRPC status code the services use.

Maps `grpc.StatusCode` to `EdgespecError` subclasses through a read-only registry. This module
does NOT decide what is retried (see `client.RetryPolicy`) and never talks to the network.
"""

from __future__ import annotations

from types import MappingProxyType

import grpc


class EdgespecError(Exception):
    """An edgespec call failed; `.code` is the gRPC status, `.details` the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class InvalidArgumentError(EdgespecError):
    """A request field is malformed or out of range (the message names the field)."""


class NotFoundError(EdgespecError):
    """Unknown, closed or expired session."""


class ResourceExhaustedError(EdgespecError):
    """Too many live sessions, or a message over the size limit."""


class UnavailableError(EdgespecError):
    """The server is draining or down; retried automatically only before a session starts."""


class DeadlineExceededError(EdgespecError):
    """The call ran past its deadline (`timeout`)."""


class FailedPreconditionError(EdgespecError):
    """A message was not valid in the session's current state."""


class ProtocolError(EdgespecError):
    """The server broke the wire contract (e.g. the stream ended without its final message)."""

    def __init__(self, details: str) -> None:
        super().__init__(grpc.StatusCode.INTERNAL, details)


_BY_CODE: MappingProxyType[grpc.StatusCode, type[EdgespecError]] = MappingProxyType(
    {
        grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
        grpc.StatusCode.NOT_FOUND: NotFoundError,
        grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
        grpc.StatusCode.UNAVAILABLE: UnavailableError,
        grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
        grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    }
)


def error_for(code: grpc.StatusCode, details: str) -> EdgespecError:
    """The typed exception for `code` (base `EdgespecError` for codes without a subclass)."""
    return _BY_CODE.get(code, EdgespecError)(code, details)


def from_rpc_error(error: grpc.RpcError) -> EdgespecError:
    """Converts a raised gRPC error (sync or asyncio) into its typed SDK exception."""
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    return error_for(code, details or str(error) or code.name)
