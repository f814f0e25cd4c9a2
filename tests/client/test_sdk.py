"""Tests of the edgespec_client SDK against a fake Orchestrator over real gRPC on 127.0.0.1.

The fake servicer picks its behaviour from the prompt (chunks + final, abort, flaky, slow...).
No models and no other `edgespec` service are involved.
"""

from __future__ import annotations

import collections
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from edgespec.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from edgespec_client import (
    AsyncClient,
    Chunk,
    Client,
    DeadlineExceededError,
    EdgespecError,
    FailedPreconditionError,
    GenerationResult,
    InvalidArgumentError,
    NotFoundError,
    ProtocolError,
    ResourceExhaustedError,
    UnavailableError,
)
from edgespec_client.call import build_channel_options

pb = orchestrator_pb2
STATS_KEYS = {
    "rounds", "drafted_tokens", "accepted_tokens", "mean_accepted_length", "acceptance_rate",
    "per_position_accepted", "target_forward_passes", "tokens_per_second", "bytes_up",
    "bytes_down", "generated_tokens", "total_ms", "ttft_ms", "draft_ms", "verify_ms",
    "round_trip_ms", "server_tokens", "mode_switches", "predrafted_tokens", "relaxed_accepted", "resumes",
}  # fmt: skip


def _final() -> pb.GenerateResponse:
    pct = pb.Percentiles(p50=1.5, p90=2.5, p99=3.5, mean=1.75)
    stats = pb.GenerationStats(
        rounds=2, drafted_tokens=5, accepted_tokens=4, mean_accepted_length=2.5,
        acceptance_rate=0.8, per_position_accepted=[2, 1, 1], target_forward_passes=3,
        tokens_per_second=12.3, bytes_up=100, bytes_down=200, draft_ms=pct, verify_ms=pct,
        round_trip_ms=pct, total_ms=400.0, generated_tokens=5, ttft_ms=90.0,
    )  # fmt: skip
    final = pb.Final(
        text="Hello world", token_ids=[1, 2, 3, 4, 5], prompt_token_ids=[7, 8],
        finish_reason="length", acceptance="exact", lossless=True, stats=stats,
    )  # fmt: skip
    return pb.GenerateResponse(final=final)


CHUNKS = (pb.Chunk(token_ids=[1, 2], text="Hello"), pb.Chunk(token_ids=[3, 4, 5], text=" world"))


class FakeOrchestrator(orchestrator_pb2_grpc.OrchestratorServicer):
    """Behaviour by prompt: "ok", "abort:<CODE>", "flaky:<N>", "chunk-then-unavailable",
    "slow", "endless", "no-final", "empty"."""

    def __init__(self) -> None:
        self.requests: list[pb.GenerateRequest] = []
        self.attempts: collections.Counter[str] = collections.Counter()
        self.cancelled = threading.Event()
        self._lock = threading.Lock()

    def Generate(self, request: pb.GenerateRequest, context: grpc.ServicerContext) -> Iterator:
        with self._lock:
            self.requests.append(request)
            self.attempts[request.prompt] += 1
            attempt = self.attempts[request.prompt]
        kind, _, arg = request.prompt.partition(":")
        if kind == "abort":
            context.abort(grpc.StatusCode[arg], f"server says {arg.lower()}")
        if kind == "flaky" and attempt <= int(arg):
            context.abort(grpc.StatusCode.UNAVAILABLE, "draining")
        if kind == "slow":
            _wait_inactive(context, 5.0)
            return
        if kind == "endless":  # runs until the client cancels; the callback reports that
            context.add_callback(self.cancelled.set)
            while context.is_active():
                yield pb.GenerateResponse(chunk=CHUNKS[0])
                time.sleep(0.01)
            return
        if kind == "empty":
            yield pb.GenerateResponse()
            return
        yield pb.GenerateResponse(chunk=CHUNKS[0])
        if kind == "chunk-then-unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "target went away")
        yield pb.GenerateResponse(chunk=CHUNKS[1])
        if kind != "no-final":
            yield _final()


def _wait_inactive(context: grpc.ServicerContext, seconds: float) -> None:
    end = time.monotonic() + seconds
    while context.is_active() and time.monotonic() < end:
        time.sleep(0.01)


@pytest.fixture
def fake() -> Iterator[tuple[str, FakeOrchestrator]]:
    servicer = FakeOrchestrator()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(grace=None)


def _check_result(r: GenerationResult) -> None:
    assert r.text == "Hello world" and r.token_ids == (1, 2, 3, 4, 5)
    assert r.prompt_token_ids == (7, 8) and r.finish_reason == "length"
    assert r.acceptance == "exact" and r.lossless is True
    assert r.stats.rounds == 2 and r.stats.per_position_accepted == (2, 1, 1)
    assert r.stats.acceptance_rate == 0.8 and r.stats.tokens_per_second == 12.3  # float32 cleaned
    assert r.stats.draft_ms.p90 == 2.5 and r.stats.round_trip_ms.mean == 1.75


# ---- sync client ----------------------------------------------------------------------------


def test_generate_returns_result(fake) -> None:
    address, _ = fake
    with Client(address, timeout=10) as c:
        _check_result(c.generate("ok", max_new_tokens=64))


def test_stream_yields_chunks_then_result(fake) -> None:
    address, _ = fake
    with Client(address, timeout=10) as c:
        chunks = c.stream("ok")
        assert chunks.result is None
        got = list(chunks)
    assert got == [Chunk((1, 2), "Hello"), Chunk((3, 4, 5), " world")]
    _check_result(chunks.result)


def test_to_dict_is_json_ready_with_all_keys(fake) -> None:
    address, _ = fake
    with Client(address, timeout=10) as c:
        d = c.generate("ok").to_dict()
    assert set(d) == {"text", "token_ids", "prompt_token_ids", "finish_reason", "acceptance",
                      "lossless", "stats"}  # fmt: skip
    assert set(d["stats"]) == STATS_KEYS
    for key in ("draft_ms", "verify_ms", "round_trip_ms"):
        assert set(d["stats"][key]) == {"p50", "p90", "p99", "mean"}
    assert d["token_ids"] == [1, 2, 3, 4, 5] and d["stats"]["per_position_accepted"] == [2, 1, 1]
    assert json.loads(json.dumps(d)) == d


def test_request_fields_sent(fake) -> None:
    address, servicer = fake
    with Client(address, timeout=10) as c:
        c.generate("ok", max_new_tokens=64, temperature=0.7, top_k=50, top_p=0.9, seed=7,
                   acceptance="rejection", draft_length="fixed", k=6, raw=True)  # fmt: skip
        c.generate("ok", prompt_token_ids=[5, 6, 7])
    full, default = servicer.requests
    assert (full.prompt, full.max_new_tokens, full.raw) == ("ok", 64, True)
    assert full.sampling.temperature == pytest.approx(0.7) and full.sampling.top_k == 50
    assert full.sampling.HasField("top_p") and full.sampling.top_p == pytest.approx(0.9)
    assert full.sampling.seed == 7 and full.k == 6
    assert (full.acceptance, full.draft_length) == ("rejection", "fixed")
    assert not default.sampling.HasField("top_p")
    assert default.sampling == common_pb2.SamplingParams()
    assert (default.acceptance, default.draft_length, default.k, default.max_new_tokens) == (
        "", "", 0, 0)  # fmt: skip
    assert list(default.prompt_token_ids) == [5, 6, 7] and default.raw is False


def test_every_generate_option_is_a_wire_field_and_every_wire_field_an_option() -> None:
    from edgespec_client import GenerateOptions
    from edgespec_client.convert import OPTIONS
    request = set(orchestrator_pb2.GenerateRequest.DESCRIPTOR.fields_by_name) - {"prompt", "sampling"}
    assert set(GenerateOptions.__annotations__) == set(OPTIONS) == request | set(
        common_pb2.SamplingParams.DESCRIPTOR.fields_by_name)


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        ("INVALID_ARGUMENT", InvalidArgumentError),
        ("NOT_FOUND", NotFoundError),
        ("RESOURCE_EXHAUSTED", ResourceExhaustedError),
        ("FAILED_PRECONDITION", FailedPreconditionError),
        ("DEADLINE_EXCEEDED", DeadlineExceededError),
        ("INTERNAL", EdgespecError),
        ("PERMISSION_DENIED", EdgespecError),
    ],
)
def test_status_codes_map_to_typed_errors(fake, code, error_type) -> None:
    address, servicer = fake
    with Client(address, timeout=10) as c, pytest.raises(EdgespecError) as info:
        c.generate(f"abort:{code}")
    assert type(info.value) is error_type and info.value.code == grpc.StatusCode[code]
    assert info.value.details == f"server says {code.lower()}"
    assert str(info.value) == f"{code}: server says {code.lower()}"
    assert servicer.attempts[f"abort:{code}"] == 1  # never retried


def test_unavailable_before_first_message_is_retried(fake) -> None:
    address, servicer = fake
    with Client(address, timeout=10, max_retries=3, retry_backoff=0.01) as c:
        _check_result(c.generate("flaky:2"))
    assert servicer.attempts["flaky:2"] == 3


def test_retries_give_up_after_max_retries(fake) -> None:
    address, servicer = fake
    with Client(address, timeout=10, max_retries=2, retry_backoff=0.01) as c:
        with pytest.raises(UnavailableError, match="draining"):
            c.generate("flaky:5")
    assert servicer.attempts["flaky:5"] == 3


def test_backoff_never_outlasts_the_deadline(fake) -> None:
    address, servicer = fake
    start = time.monotonic()
    with Client(address, timeout=0.5, max_retries=10, retry_backoff=0.2) as c:
        with pytest.raises(UnavailableError):
            c.generate("flaky:100")
    assert time.monotonic() - start < 0.5
    assert servicer.attempts["flaky:100"] == 2  # 0.2 s wait, then 0.4 s would pass the deadline


def test_unavailable_after_a_chunk_is_not_retried(fake) -> None:
    address, servicer = fake
    with Client(address, timeout=10, retry_backoff=0.01) as c:
        chunks = c.stream("chunk-then-unavailable")
        assert next(chunks) == Chunk((1, 2), "Hello")
        with pytest.raises(UnavailableError, match="target went away"):
            next(chunks)
    assert servicer.attempts["chunk-then-unavailable"] == 1


def test_deadline_exceeded(fake) -> None:
    address, _ = fake
    with Client(address, timeout=10) as c, pytest.raises(DeadlineExceededError):
        c.generate("slow", timeout=0.3)  # per-call override of the client default


def test_missing_final_is_a_protocol_error(fake) -> None:
    address, _ = fake
    with Client(address, timeout=10) as c:
        with pytest.raises(ProtocolError, match="without a final message after 2 chunk"):
            c.generate("no-final")
        with pytest.raises(ProtocolError, match="neither"):
            c.generate("empty")


def test_closing_a_stream_early_cancels_the_rpc(fake) -> None:
    address, servicer = fake
    with Client(address, timeout=10) as c, c.stream("endless") as chunks:
        next(chunks)
    assert servicer.cancelled.wait(5.0)


def test_unreachable_server_raises_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(f"127.0.0.1:{port}", timeout=10, max_retries=2, retry_backoff=0.01) as c:
        with pytest.raises(UnavailableError):
            c.generate("ok")


def test_bad_request_values_fail_before_any_rpc(fake) -> None:
    address, servicer = fake
    with Client(address, timeout=10) as c:
        with pytest.raises(InvalidArgumentError, match="k: must be >= 0"):
            c.generate("ok", k=-1)
        with pytest.raises(TypeError):
            c.stream("ok", bogus=1)  # type: ignore[call-arg]
        with pytest.raises(ValueError):
            c.stream("ok", timeout=0)
    with pytest.raises(ValueError):
        Client(address, timeout=-1)
    assert servicer.requests == []


def test_secure_channel_with_credentials() -> None:
    servicer = FakeOrchestrator()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(servicer, server)
    kind = grpc.LocalConnectionType.LOCAL_TCP
    port = server.add_secure_port("127.0.0.1:0", grpc.local_server_credentials(kind))
    server.start()
    try:
        creds = grpc.local_channel_credentials(kind)
        with Client(f"127.0.0.1:{port}", timeout=10, credentials=creds) as c:
            _check_result(c.generate("ok"))
    finally:
        server.stop(grace=None)


def test_channel_options_defaults_and_override() -> None:
    defaults = dict(build_channel_options())
    assert defaults["grpc.keepalive_time_ms"] == 20_000
    assert defaults["grpc.keepalive_timeout_ms"] == 5_000
    assert defaults["grpc.keepalive_permit_without_calls"] == 1
    assert defaults["grpc.max_receive_message_length"] == 16 * 1024 * 1024
    merged = dict(build_channel_options({"grpc.keepalive_time_ms": 1000, "grpc.x": 1}))
    assert merged["grpc.keepalive_time_ms"] == 1000 and merged["grpc.x"] == 1
    assert merged["grpc.keepalive_timeout_ms"] == 5_000


# ---- asyncio client -------------------------------------------------------------------------


async def test_async_generate_and_stream(fake) -> None:
    address, _ = fake
    async with AsyncClient(address, timeout=10) as c:
        _check_result(await c.generate("ok"))
        chunks = c.stream("ok")
        got = [chunk async for chunk in chunks]
    assert got == [Chunk((1, 2), "Hello"), Chunk((3, 4, 5), " world")]
    _check_result(chunks.result)


async def test_async_invalid_argument(fake) -> None:
    address, _ = fake
    async with AsyncClient(address, timeout=10) as c:
        with pytest.raises(InvalidArgumentError, match="^INVALID_ARGUMENT: server says"):
            await c.generate("abort:INVALID_ARGUMENT")


async def test_async_retries_only_before_first_message(fake) -> None:
    address, servicer = fake
    async with AsyncClient(address, timeout=10, max_retries=3, retry_backoff=0.01) as c:
        _check_result(await c.generate("flaky:2"))
        with pytest.raises(UnavailableError):
            await c.generate("chunk-then-unavailable")
    assert servicer.attempts["flaky:2"] == 3
    assert servicer.attempts["chunk-then-unavailable"] == 1


async def test_async_deadline_and_missing_final(fake) -> None:
    address, _ = fake
    async with AsyncClient(address, timeout=0.3) as c:
        with pytest.raises(DeadlineExceededError):
            await c.generate("slow")
        with pytest.raises(ProtocolError, match="final"):
            await c.generate("no-final")


async def test_async_closing_a_stream_early_cancels_the_rpc(fake) -> None:
    address, servicer = fake
    async with AsyncClient(address, timeout=10) as c:
        async with c.stream("endless") as chunks:
            await anext(chunks)
    assert servicer.cancelled.wait(5.0)


# ---- packaging ------------------------------------------------------------------------------


def test_import_pulls_no_models_or_services() -> None:
    code = (
        "import sys, edgespec_client; print(sorted(m for m in sys.modules "
        "if m.startswith(('torch','transformers','edgespec.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = eval(out.stdout)  # a printed list of str
    assert modules and all(m == "edgespec.v1" or m.startswith("edgespec.v1.") for m in modules)


class _Failed(grpc.RpcError):
    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


class _Call:
    """What a grpc.aio call reports after the server ended it (code() / details() are coroutines)."""

    def __init__(self, code, details):
        self._code, self._details = code, details

    async def code(self):
        return self._code

    async def details(self):
        return self._details


async def test_the_core_artefact_is_mapped_to_the_servers_status():
    from edgespec_client.aio import real_status
    from edgespec_client.errors import from_rpc_error
    artefact = _Failed(grpc.StatusCode.INTERNAL, "Internal error from Core")
    sent = _Call(grpc.StatusCode.NOT_FOUND, "session_id: unknown, closed or expired session 'a1b6b9bf'")
    error = from_rpc_error(await real_status(artefact, sent))
    assert isinstance(error, NotFoundError) and error.details.startswith("session_id")
    # the call knows no better: the artefact stays; any other error is left alone
    unknown = _Call(grpc.StatusCode.INTERNAL, "Internal error from Core")
    assert await real_status(artefact, unknown) is artefact
    real = _Failed(grpc.StatusCode.INTERNAL, "internal error; the server logged the details")
    assert await real_status(real, sent) is real
