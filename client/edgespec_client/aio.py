"""Asyncio client of the edgespec Orchestrator service (`AsyncClient`), on `grpc.aio`.

Same behaviour as the sync `Client` (deadlines, typed errors, retry of UNAVAILABLE only before
the first response) and shares its policy objects. It does NOT parse protobuf messages itself
(see `convert`); create and use it inside a running event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from types import TracebackType
from typing import Unpack

import grpc
import grpc.aio

from edgespec.v1 import orchestrator_pb2, orchestrator_pb2_grpc

from . import convert
from .client import (
    DEFAULT_TIMEOUT,
    ChannelOptions,
    Deadline,
    RetryPolicy,
    build_channel_options,
    check_timeout,
    expect_result,
)
from .errors import from_rpc_error
from .tracing import GenerateTrace
from .types import Chunk, GenerateOptions, GenerationResult

_Event = Chunk | GenerationResult


class AsyncGenerationStream(AsyncIterator[Chunk]):
    """Async iterator of the `Chunk`s of one generation; `.result` holds the GenerationResult after.

    `.result` is None until the iterator is exhausted. Use `async with` (or `await aclose()`)
    to cancel the RPC when stopping early.
    """

    def __init__(self, events: AsyncGenerator[_Event, None]) -> None:
        self._events = events
        self.result: GenerationResult | None = None

    async def __anext__(self) -> Chunk:
        if self.result is not None:
            raise StopAsyncIteration
        event = await anext(self._events)
        if isinstance(event, GenerationResult):
            self.result = event
            await self._events.aclose()
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        """Cancels the RPC if it is still running."""
        await self._events.aclose()

    async def __aenter__(self) -> AsyncGenerationStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncClient:
    """Asyncio client of one Orchestrator; use `async with` or `await close()`.

    Every call has a deadline of `timeout` seconds (overridable per call) covering its retries.
    """

    def __init__(
        self,
        address: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        retry_backoff: float = 0.1,
        credentials: grpc.ChannelCredentials | None = None,
        channel_options: ChannelOptions | None = None,
    ) -> None:
        self.address = address
        self.timeout = check_timeout(timeout)
        self.retry_policy = RetryPolicy(max_retries=max_retries, initial_backoff=retry_backoff)
        options = build_channel_options(channel_options)
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(address, options=options)
        else:
            self._channel = grpc.aio.secure_channel(address, credentials, options=options)
        self._stub = orchestrator_pb2_grpc.OrchestratorStub(self._channel)

    async def generate(
        self, prompt: str = "", *, timeout: float | None = None, **options: Unpack[GenerateOptions]
    ) -> GenerationResult:
        """Generates to completion; see `GenerateOptions` for the keyword options.

        Raises an `EdgespecError` subclass on failure (InvalidArgumentError, UnavailableError...).
        """
        async with self.stream(prompt, timeout=timeout, **options) as chunks:
            async for _ in chunks:
                pass
        return expect_result(chunks.result)

    def stream(
        self, prompt: str = "", *, timeout: float | None = None, **options: Unpack[GenerateOptions]
    ) -> AsyncGenerationStream:
        """Streams the generation: `async for` the `Chunk`s, then read `.result`.

        Not a coroutine: the request is validated now, the RPC starts on the first `__anext__`.
        """
        request = convert.build_request(prompt, **options)
        deadline = Deadline(self.timeout if timeout is None else timeout)
        return AsyncGenerationStream(self._traced(request, deadline))

    async def _traced(
        self, request: orchestrator_pb2.GenerateRequest, deadline: Deadline
    ) -> AsyncGenerator[_Event, None]:
        traced = GenerateTrace(request)  # a `generate` span when OpenTelemetry is configured
        try:
            async for event in self._events(request, deadline, traced.metadata):
                if isinstance(event, GenerationResult):
                    traced.finished(event)
                yield event
        except Exception as exc:
            traced.failed(exc)
            raise
        finally:
            traced.end()

    async def _events(
        self, request: orchestrator_pb2.GenerateRequest, deadline: Deadline, metadata: tuple = ()
    ) -> AsyncGenerator[_Event, None]:
        attempt = 0
        while True:
            received = 0
            call = self._stub.Generate(request, timeout=deadline.remaining(), metadata=metadata or None)
            try:
                async for response in call:
                    received += 1
                    event = convert.event_from_pb(response)
                    yield event
                    if isinstance(event, GenerationResult):
                        return
                raise convert.missing_final(received)
            except grpc.RpcError as e:
                error = from_rpc_error(e)
                if not self.retry_policy.should_retry(error, received=received > 0, attempt=attempt):
                    raise error from e
            finally:
                call.cancel()
            await asyncio.sleep(deadline.backoff_or_raise(self.retry_policy, attempt, error))
            attempt += 1

    async def close(self) -> None:
        """Closes the channel; running calls are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient({self.address!r}, timeout={self.timeout})"
