"""Asyncio client of the edgespec Orchestrator service (`AsyncClient`), on `grpc.aio`.

Same behaviour as the sync `Client` (deadlines, typed errors, retry of UNAVAILABLE only before
the first response); what the two share lives in `call`. It does NOT parse protobuf messages itself
(see `convert`); create and use it inside a running event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from types import TracebackType
from typing import Unpack

import grpc
import grpc.aio

from .call import Attempts, ClientBase, Deadline, expect_result, traced_call
from .types import Chunk, GenerateOptions, GenerationResult

_Event = Chunk | GenerationResult
CORE_ARTEFACT = "Internal error from Core"


class _Status(grpc.RpcError):
    """A status read back from the call (what `from_rpc_error` needs: code() and details())."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


async def real_status(error: grpc.RpcError, call) -> grpc.RpcError:
    """`error`, unless it is grpc.aio's "INTERNAL: Internal error from Core" artefact
    (grpc/grpc#36066), raised after the server ended the call with a status of its own: then the
    status the call itself holds, which is the server's."""
    if error.code() != grpc.StatusCode.INTERNAL or CORE_ARTEFACT not in (error.details() or ""):
        return error
    try:
        code, details = await call.code(), await call.details()
    except (grpc.RpcError, asyncio.CancelledError, asyncio.InvalidStateError):
        return error
    if not isinstance(code, grpc.StatusCode) or code in (grpc.StatusCode.OK, grpc.StatusCode.INTERNAL) \
            and CORE_ARTEFACT in (details or ""):
        return error
    return _Status(code, details or code.name)


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


class AsyncClient(ClientBase):
    """Asyncio client of one Orchestrator; use `async with` or `await close()`.

    Every call has a deadline of `timeout` seconds (overridable per call) covering its retries.
    """

    _grpc = grpc.aio

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
        return AsyncGenerationStream(self._events(*self._call(prompt, timeout, options)))

    async def _events(self, request, deadline: Deadline) -> AsyncGenerator[_Event, None]:
        with traced_call(request) as traced:
            attempts = Attempts(request, deadline, self.retry_policy, (*traced.metadata, *self._auth))
            while True:
                call = attempts.start(self._stub)
                try:
                    async for response in call:
                        event = attempts.event(response)
                        if isinstance(event, GenerationResult):
                            traced.finished(event)
                        yield event
                        if isinstance(event, GenerationResult):
                            return
                    raise attempts.ended_early()
                except grpc.RpcError as e:
                    delay = attempts.retry_after(await real_status(e, call))
                finally:
                    call.cancel()
                await asyncio.sleep(delay)

    async def close(self) -> None:
        """Closes the channel; running calls are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
