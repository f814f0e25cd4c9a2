"""Synchronous client of the edgespec Orchestrator service (`Client`).

Also home of what the asyncio client shares with it: channel options, the retry policy (retry
UNAVAILABLE only before the first response arrived) and the per-call deadline. It does NOT build
or parse protobuf messages itself (see `convert`) and holds no model code.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Unpack

import grpc

from edgespec.v1 import orchestrator_pb2, orchestrator_pb2_grpc

from . import convert
from .errors import EdgespecError, ProtocolError, from_rpc_error
from .tracing import GenerateTrace
from .types import Chunk, GenerateOptions, GenerationResult

DEFAULT_TIMEOUT = 120.0
MAX_RECEIVE_MESSAGE_BYTES = 16 * 1024 * 1024
DEFAULT_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES),
)

ChannelOptions = Mapping[str, Any] | Sequence[tuple[str, Any]]


def build_channel_options(override: ChannelOptions | None = None) -> list[tuple[str, Any]]:
    """The default channel options with `override`'s entries replacing or adding keys."""
    merged = dict(DEFAULT_CHANNEL_OPTIONS)
    merged.update(dict(override or ()))
    return list(merged.items())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff for UNAVAILABLE before the session started; nothing else retries."""

    max_retries: int = 3
    initial_backoff: float = 0.1
    multiplier: float = 2.0
    max_backoff: float = 5.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.initial_backoff < 0 or self.multiplier < 1:
            raise ValueError(f"invalid retry policy: {self}")

    def should_retry(self, error: EdgespecError, *, received: bool, attempt: int) -> bool:
        """True for UNAVAILABLE with no response received yet and retries left."""
        unavailable = error.code == grpc.StatusCode.UNAVAILABLE
        return unavailable and not received and attempt < self.max_retries

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt + 1`."""
        return min(self.initial_backoff * self.multiplier**attempt, self.max_backoff)


def check_timeout(timeout: float) -> float:
    """`timeout` itself; ValueError unless it is a positive number of seconds."""
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    return timeout


class Deadline:
    """An absolute deadline shared by every attempt of one call (retries included)."""

    __slots__ = ("timeout", "_end")

    def __init__(self, timeout: float) -> None:
        self.timeout = check_timeout(timeout)
        self._end = time.monotonic() + timeout

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(self._end - time.monotonic(), 0.0)

    def backoff_or_raise(self, policy: RetryPolicy, attempt: int, error: EdgespecError) -> float:
        """The backoff before the next attempt; raises `error` if it would outlast the deadline."""
        delay = policy.backoff(attempt)
        if delay >= self.remaining():
            raise error
        return delay


def expect_result(result: GenerationResult | None) -> GenerationResult:
    """`result`, or a ProtocolError when a drained stream produced none."""
    if result is None:
        raise ProtocolError("Generate stream finished without a result")
    return result


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


class Client:
    """Blocking client of one Orchestrator; thread-safe, use as a context manager or `close()`.

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
            self._channel = grpc.insecure_channel(address, options=options)
        else:
            self._channel = grpc.secure_channel(address, credentials, options=options)
        self._stub = orchestrator_pb2_grpc.OrchestratorStub(self._channel)

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
        request = convert.build_request(prompt, **options)
        deadline = Deadline(self.timeout if timeout is None else timeout)
        return GenerationStream(self._traced(request, deadline))

    def _traced(
        self, request: orchestrator_pb2.GenerateRequest, deadline: Deadline
    ) -> Generator[Chunk, None, GenerationResult]:
        traced = GenerateTrace(request)  # a `generate` span when OpenTelemetry is configured
        try:
            result = yield from self._events(request, deadline, traced.metadata)
            traced.finished(result)
            return result
        except Exception as exc:
            traced.failed(exc)
            raise
        finally:
            traced.end()

    def _events(
        self, request: orchestrator_pb2.GenerateRequest, deadline: Deadline, metadata: tuple = ()
    ) -> Generator[Chunk, None, GenerationResult]:
        attempt = 0
        while True:
            received = 0
            call = self._stub.Generate(request, timeout=deadline.remaining(), metadata=metadata or None)
            try:
                for response in call:
                    received += 1
                    event = convert.event_from_pb(response)
                    if isinstance(event, GenerationResult):
                        return event
                    yield event
                raise convert.missing_final(received)
            except grpc.RpcError as e:
                error = from_rpc_error(e)
                if not self.retry_policy.should_retry(error, received=received > 0, attempt=attempt):
                    raise error from e
            finally:
                call.cancel()
            time.sleep(deadline.backoff_or_raise(self.retry_policy, attempt, error))
            attempt += 1

    def close(self) -> None:
        """Closes the channel; running calls are cancelled."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.address!r}, timeout={self.timeout})"
