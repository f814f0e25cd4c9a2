"""VerifierServicer: the thin gRPC face of the target — decode, call a LocalVerifier, encode.
One bidi stream per session; the session (its KV slot in the shared BatchEngine) lives in a
SessionRegistry and is freed when the stream ends, the client goes away, or it idles past the
TTL. Budgets, KV and batching live behind the verifier and the engine, not here; the engine is
created and closed by `target/serve.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from edgespec.core.acceptance import RULES
from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.types import MAX_DRAFT_TOKENS, Proposal, SessionStateError
from edgespec.models.batch_engine import BatchEngine
from edgespec.models.local_verifier import LocalVerifier
from edgespec.models.presets import LoadedModel
from edgespec.models.semantic_head import load_head
from edgespec.rpc import codec
from edgespec.rpc.caller import caller_of
from edgespec.rpc.sessions import SessionNotFound, SessionRegistry
from edgespec.target.config import TargetConfig
from edgespec.telemetry.runtime import Telemetry
from edgespec.telemetry.span_attrs import SpanAttr
from edgespec.telemetry.spans import mark_error
from edgespec.telemetry.tracing import context_from
from edgespec.v1 import common_pb2, target_pb2, target_pb2_grpc


class _BlockSpan:
    """The `verify` span of one block: it ends with the block's last verdict (before that goes
    down the wire), or with the error that cut the block short."""

    def __init__(self, span, verdicts: int) -> None:
        self.span, self.left = span, verdicts
        self.totals = {SpanAttr.ACCEPTED: 0, SpanAttr.VERIFY_MS: 0.0, SpanAttr.QUEUE_MS: 0.0}

    def observe(self, verdict: common_pb2.Verdict) -> None:
        self.totals[SpanAttr.ACCEPTED] += verdict.accepted
        self.totals[SpanAttr.VERIFY_MS] += verdict.verify_ms
        self.totals[SpanAttr.QUEUE_MS] += verdict.queue_ms
        self.left -= 1
        if not self.left:
            self.end()

    def end(self, error: BaseException | None = None) -> None:
        if self.span is None:
            return
        if error is not None:
            mark_error(self.span, error)
        self.span.set_attributes(self.totals)
        self.span.end()
        self.span = None


class VerifierServicer(target_pb2_grpc.VerifierServicer):
    """Serves verification sessions over one loaded target model and its batch engine."""

    def __init__(self, target: LoadedModel, config: TargetConfig, engine: BatchEngine,
                 telemetry: Telemetry | None = None) -> None:
        self.target, self.config, self.engine = target, config, engine
        self.telemetry = telemetry or Telemetry()
        self.head = load_head(config.semantic_head) if config.semantic_head else None
        self.sessions: SessionRegistry[LocalVerifier] = SessionRegistry(
            config.max_sessions, config.idle_ttl_s, config.open_ttl_s, config.per_caller_cap)
        self.draining = False
        self.reaper: asyncio.Task | None = None
        metrics = self.telemetry.metrics
        metrics.live_sessions.labels(service="target").set_function(lambda: len(self.sessions))
        metrics.watch_kv_pool(engine.pool, "target")

    def start(self) -> None:
        """Start reaping idle sessions (call on the server's event loop)."""
        self.reaper = asyncio.create_task(self.sessions.reap_forever())

    async def drain(self) -> None:
        """Refuse new sessions (UNAVAILABLE), flag verdicts `draining`, and wait until the live
        sessions have finished (the caller bounds the wait with its grace period)."""
        self.draining = True
        while len(self.sessions):
            await asyncio.sleep(0.05)

    async def shutdown(self) -> None:
        """Free every session (the engine belongs to whoever created it)."""
        if self.reaper is not None:
            self.reaper.cancel()
        await self.sessions.close_all()
        self.telemetry.close()

    async def Info(self, request, context) -> common_pb2.ModelInfo:
        return common_pb2.ModelInfo(
            model=self.target.name, vocab_size=self.target.vocab_size, hidden_size=self.target.hidden_size,
            max_prompt_tokens=self.config.max_prompt_tokens, max_new_tokens=self.config.max_new_tokens,
            max_draft_tokens=MAX_DRAFT_TOKENS, acceptance_rules=sorted(RULES),
            live_sessions=len(self.sessions), max_sessions=self.config.max_sessions)

    async def Session(self, request_iterator: AsyncIterator[target_pb2.VerifierRequest],
                      context: grpc.aio.ServicerContext) -> AsyncIterator[target_pb2.VerifierResponse]:
        first = await anext(request_iterator, None)
        if first is None or not first.HasField("open"):
            raise SessionStateError("open: the first message of a session must be `open`")
        if self.draining:
            raise ConnectionError("open: the server is draining; open the session elsewhere")
        spec = codec.spec_from_pb(first.open, self.config.max_prompt_tokens)
        spec.check(self.target.vocab_size, self.config.max_prompt_tokens, self.config.max_new_tokens)
        verifier = LocalVerifier(self.target.model, self.target.vocab_size, ResolvedSpec.of(spec), None,
                                 self.head, self.engine)
        session_id = self.sessions.open(verifier, caller_of(context))
        self.telemetry.metrics.sessions_opened.labels(service="target").inc()
        try:
            with self.sessions.busy(session_id):
                prefill_ms = await verifier.prefill()
            yield target_pb2.VerifierResponse(opened=common_pb2.SessionOpened(
                session_id=session_id, prefill_ms=prefill_ms, vocab_size=self.target.vocab_size,
                counters=common_pb2.SessionCounters(forward_passes=verifier.forward_passes)))
            async for request in self.sessions.requests(session_id, request_iterator):
                with self.sessions.busy(session_id):  # NOT_FOUND once reaped; never reaped mid-block
                    async for response in self._round(session_id, verifier, request, spec.acceptance,
                                                      request_iterator):
                        yield response
        finally:
            await self.sessions.close(session_id)

    async def _round(self, session_id: str, verifier: LocalVerifier, request: target_pb2.VerifierRequest,
                     rule: str, requests: AsyncIterator[target_pb2.VerifierRequest],
                     ) -> AsyncIterator[target_pb2.VerifierResponse]:
        """One verdict for a block, or `server_tokens` verdicts streamed as they are generated."""
        if not request.HasField("block"):
            raise SessionStateError("open: a session is opened once; later messages must be blocks")
        if request.block.session_id != session_id:
            raise SessionNotFound(f"session_id: {request.block.session_id[:8]!r} is not this stream's session")
        proposal = codec.proposal_from_pb(request.block, verifier.block_hidden_size, self.target.vocab_size)
        n = request.block.server_tokens
        attributes = {SpanAttr.ROUND: proposal.round, SpanAttr.SESSION: session_id, SpanAttr.K: proposal.k,
                      SpanAttr.RULE: rule, SpanAttr.TARGET_MODEL: self.target.name,
                      SpanAttr.SERVER_TOKENS: n}
        span = _BlockSpan(self.telemetry.tracer.start_span(
            "verify", context=context_from(proposal.trace_context), attributes=attributes), max(1, n))
        try:
            async for response in self._answer(verifier, proposal, n, requests):
                if response.HasField("verdict"):
                    self.telemetry.metrics.verify_seconds.observe(response.verdict.verify_ms / 1e3)
                    self.telemetry.metrics.verify_queue_seconds.observe(response.verdict.queue_ms / 1e3)
                    span.observe(response.verdict)
                yield response
        except Exception as exc:
            span.end(exc)
            raise
        finally:
            span.end()

    async def _answer(self, verifier: LocalVerifier, proposal: Proposal, n: int,
                      requests: AsyncIterator[target_pb2.VerifierRequest]) -> AsyncIterator[target_pb2.VerifierResponse]:
        if n:
            async for verdict in verifier.autoregress(proposal, n):
                yield self._verdict(verdict, verifier)
            return
        pending = await verifier.begin(proposal)
        if pending.missing:  # mismatch-first: ask for the rows that failed exact match
            yield target_pb2.VerifierResponse(hidden_request=target_pb2.HiddenRequest(
                round=proposal.round, positions=list(pending.missing)))
            upload = await anext(requests, None)
            if upload is None or not upload.HasField("hidden"):
                raise SessionStateError("hidden: the target asked for hidden states; send them next")
            rows = codec.hidden_rows_from_pb(upload.hidden, proposal.round, len(pending.missing),
                                             verifier.draft_hidden_size)
            pending = pending.with_hidden(rows, verifier.draft_hidden_size)
        yield self._verdict(await verifier.finish(pending), verifier)

    def _verdict(self, verdict, verifier: LocalVerifier) -> target_pb2.VerifierResponse:
        return target_pb2.VerifierResponse(verdict=codec.verdict_to_pb(verdict, rounds=verifier.round,
                                                                       draining=self.draining))
