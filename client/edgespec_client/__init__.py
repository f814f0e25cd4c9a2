"""edgespec_client: the Python SDK of the edgespec Orchestrator (sync `Client`, asyncio `AsyncClient`).

Depends only on grpcio, protobuf and the generated `edgespec.v1` stubs; it is NOT a server and
never imports torch, transformers or any other part of `edgespec`.

    with Client("127.0.0.1:50052") as c:
        print(c.generate("Hello", max_new_tokens=32).text)
"""

from .aio import AsyncClient, AsyncGenerationStream
from .call import RetryPolicy
from .client import Client, GenerationStream
from .errors import (
    DeadlineExceededError,
    EdgespecError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ProtocolError,
    ResourceExhaustedError,
    UnavailableError,
)
from .types import Chunk, GenerateOptions, GenerationResult, GenerationStats, Percentiles

__all__ = [
    "AsyncClient",
    "AsyncGenerationStream",
    "Chunk",
    "Client",
    "DeadlineExceededError",
    "EdgespecError",
    "FailedPreconditionError",
    "GenerateOptions",
    "GenerationResult",
    "GenerationStats",
    "GenerationStream",
    "InvalidArgumentError",
    "NotFoundError",
    "Percentiles",
    "ProtocolError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "UnavailableError",
]
