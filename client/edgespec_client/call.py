"""What one Generate call shares between the sync `Client` and the asyncio `AsyncClient`: the
channel options, the retry policy (retry UNAVAILABLE only before the first response arrived), the
per-call deadline, the per-attempt bookkeeping (`Attempts`), the `generate` span around a call
(`traced_call`), and `ClientBase`, which holds the channel and builds each call's request.

It does NOT do I/O itself: the clients iterate the RPC and sleep, sync or async, around these.
"""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

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
    ("grpc.http2.ping_timeout_ms", 5_000),  # a sent ping's ack deadline (grpc's default: 60 s)
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES),
)

ChannelOptions = Mapping[str, Any] | Sequence[tuple[str, Any]]
PemSource = str | bytes | os.PathLike  # PEM bytes, or the path of a PEM file


def _pem(source: PemSource | None, what: str) -> bytes | None:
    if source is None or isinstance(source, bytes):
        return source
    try:
        return pathlib.Path(source).read_bytes()
    except OSError as exc:
        raise ValueError(f"{what}: cannot read {str(source)!r} ({exc.strerror})") from None


def tls_credentials(ca: PemSource | None, cert: PemSource | None, key: PemSource | None) -> grpc.ChannelCredentials:
    """TLS trusting `ca` (None: the system roots), presenting `cert`/`key` for mTLS."""
    if (cert is None) != (key is None):
        raise ValueError("tls_cert, tls_key: give both the client certificate and its key")
    return grpc.ssl_channel_credentials(_pem(ca, "tls_ca"), _pem(key, "tls_key"), _pem(cert, "tls_cert"))


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


class Attempts:
    """The attempts of one call: responses received in the current one, and whether (after how
    long) to retry when it fails."""

    def __init__(self, request: orchestrator_pb2.GenerateRequest, deadline: Deadline, policy: RetryPolicy,
                 metadata: tuple = ()) -> None:
        self.request, self.deadline, self.policy, self.metadata = request, deadline, policy, metadata
        self.attempt = self.received = 0

    def start(self, stub: orchestrator_pb2_grpc.OrchestratorStub):
        """Start the next attempt's RPC (sync or aio, whichever `stub` is)."""
        self.received = 0
        return stub.Generate(self.request, timeout=self.deadline.remaining(), metadata=self.metadata or None)

    def event(self, response: orchestrator_pb2.GenerateResponse) -> Chunk | GenerationResult:
        self.received += 1
        return convert.event_from_pb(response)

    def ended_early(self) -> ProtocolError:
        return convert.missing_final(self.received)

    def retry_after(self, rpc_error: grpc.RpcError) -> float:
        """Seconds to wait before the next attempt; raises the typed error when none follows."""
        error = from_rpc_error(rpc_error)
        if not self.policy.should_retry(error, received=self.received > 0, attempt=self.attempt):
            raise error from rpc_error
        delay = self.deadline.backoff_or_raise(self.policy, self.attempt, error)
        self.attempt += 1
        return delay


@contextmanager
def traced_call(request: orchestrator_pb2.GenerateRequest) -> Iterator[GenerateTrace]:
    """The `generate` span of one call (when OpenTelemetry is configured): failures recorded, always ended."""
    traced = GenerateTrace(request)
    try:
        yield traced
    except Exception as exc:
        traced.failed(exc)
        raise
    finally:
        traced.end()


class ClientBase:
    """The channel, stub, timeout and retry policy of one client; `_grpc` is `grpc` or `grpc.aio`."""

    _grpc: ModuleType = grpc

    def __init__(
        self,
        address: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        retry_backoff: float = 0.1,
        credentials: grpc.ChannelCredentials | None = None,
        channel_options: ChannelOptions | None = None,
        tls_ca: PemSource | None = None,
        tls_cert: PemSource | None = None,
        tls_key: PemSource | None = None,
        server_name: str | None = None,
        token: str | None = None,
    ) -> None:
        self.address = address
        self.timeout = check_timeout(timeout)
        self.retry_policy = RetryPolicy(max_retries=max_retries, initial_backoff=retry_backoff)
        options = build_channel_options(channel_options)
        if credentials is None and (tls_ca is not None or tls_cert is not None):
            credentials = tls_credentials(tls_ca, tls_cert, tls_key)
        if server_name is not None:
            if credentials is None:
                raise ValueError("server_name: a server-name override needs TLS (tls_ca)")
            options.append(("grpc.ssl_target_name_override", server_name))
        self._auth: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        if credentials is None:
            self._channel = self._grpc.insecure_channel(address, options=options)
        else:
            self._channel = self._grpc.secure_channel(address, credentials, options=options)
        self._stub = orchestrator_pb2_grpc.OrchestratorStub(self._channel)

    def _call(self, prompt: str, timeout: float | None,
              options: GenerateOptions) -> tuple[orchestrator_pb2.GenerateRequest, Deadline]:
        """The request (validated now) and the deadline of one call."""
        return convert.build_request(prompt, **options), Deadline(self.timeout if timeout is None else timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address!r}, timeout={self.timeout})"
