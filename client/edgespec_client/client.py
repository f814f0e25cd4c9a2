"""Synchronous client of the edgespec Orchestrator service (`Client`).

What it shares with the asyncio client (channel, retry policy, deadline, attempts, the call's
span) lives in `call`. It does NOT build or parse protobuf messages itself (see `convert`) and
holds no model code.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from types import TracebackType
from typing import Unpack

import grpc

from .call import Attempts, ClientBase, Deadline, expect_result, traced_call
from .types import Chunk, GenerateOptions, GenerationResult

class GenerationStream(Iterator[Chunk]):
    """Iterator of the `Chunk`s of one generation; `.result` holds the GenerationResult after.

    `.result` is None until the iterator is exhausted. Use it as a context manager (or call
    `close()`) to cancel the RPC when stopping early.
    """

    def __init__(self, events: Generator[Chunk, None, GenerationResult]) -> None:
        self._events = events
        self.result: GenerationResult | None = None

    def __next__(self) -> Chunk:
        try:
            return next(self._events)
        except StopIteration as stop:
            if stop.value is not None:
                self.result = stop.value
            raise

    def close(self) -> None:
        """Cancels the RPC if it is still running."""
        self._events.close()

    def __enter__(self) -> GenerationStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client(ClientBase):
    """Blocking client of one Orchestrator; thread-safe, use as a context manager or `close()`.

    Every call has a deadline of `timeout` seconds (overridable per call) covering its retries.
    """

    def generate(
        self, prompt: str = "", *, timeout: float | None = None, **options: Unpack[GenerateOptions]
    ) -> GenerationResult:
        """Generates to completion; see `GenerateOptions` for the keyword options.

        Raises an `EdgespecError` subclass on failure (InvalidArgumentError, UnavailableError...).
        """
        with self.stream(prompt, timeout=timeout, **options) as chunks:
            for _ in chunks:
                pass
        return expect_result(chunks.result)

    def stream(
        self, prompt: str = "", *, timeout: float | None = None, **options: Unpack[GenerateOptions]
    ) -> GenerationStream:
        """Streams the generation: iterate for `Chunk`s, then read `.result` (GenerationResult).

        The request is validated now; the RPC starts on the first `next()`.
        """
        return GenerationStream(self._events(*self._call(prompt, timeout, options)))

    def _events(self, request, deadline: Deadline) -> Generator[Chunk, None, GenerationResult]:
        with traced_call(request) as traced:
            attempts = Attempts(request, deadline, self.retry_policy, (*traced.metadata, *self._auth))
            while True:
                call = attempts.start(self._stub)
                try:
                    for response in call:
                        event = attempts.event(response)
                        if isinstance(event, GenerationResult):
                            traced.finished(event)
                            return event
                        yield event
                    raise attempts.ended_early()
                except grpc.RpcError as e:
                    delay = attempts.retry_after(e)
                finally:
                    call.cancel()
                time.sleep(delay)

    def close(self) -> None:
        """Closes the channel; running calls are cancelled."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
