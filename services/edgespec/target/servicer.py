"""VerifierServicer: the thin gRPC face of the target — decode, call a LocalVerifier, encode.
One bidi stream per session; the session (KV cache) lives in a SessionRegistry and is freed when
the stream ends, the client goes away, or it idles past the TTL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import Executor

import grpc

from edgespec.core.acceptance import RULES
from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.types import MAX_DRAFT_TOKENS, SessionSpec, SessionStateError
from edgespec.models.local_verifier import LocalVerifier
from edgespec.models.semantic_head import load_head
from edgespec.models.presets import LoadedModel
from edgespec.rpc import codec
from edgespec.rpc.sessions import SessionNotFound, SessionRegistry
from edgespec.target.config import TargetConfig
from edgespec.telemetry.runtime import Telemetry
from edgespec.telemetry.spans import mark_error
from edgespec.telemetry.tracing import context_from
from edgespec.v1 import common_pb2, target_pb2, target_pb2_grpc


class VerifierServicer(target_pb2_grpc.VerifierServicer):
    """Serves verification sessions over one loaded target model."""

    def __init__(self, target: LoadedModel, config: TargetConfig, executor: Executor,
                 telemetry: Telemetry | None = None) -> None:
        self.target, self.config, self.executor = target, config, executor
        self.telemetry = telemetry or Telemetry()
        self.head = load_head(config.semantic_head) if config.semantic_head else None
        self.sessions: SessionRegistry[LocalVerifier] = SessionRegistry(config.max_sessions, config.idle_ttl_s)
        self.draining = False
        self.reaper: asyncio.Task | None = None
        self.telemetry.metrics.live_sessions.labels(service="target").set_function(lambda: len(self.sessions))

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
        """Free every session and the model thread."""
        if self.reaper is not None:
            self.reaper.cancel()
        await self.sessions.close_all()
        self.executor.shutdown(wait=False)
        self.telemetry.close()

    async def Info(self, request, context) -> target_pb2.ModelInfo:
        return target_pb2.ModelInfo(
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
        spec = codec.spec_from_pb(first.open)
        spec.check(self.target.vocab_size, self.config.max_prompt_tokens, self.config.max_new_tokens)
        verifier = LocalVerifier(self.target.model, self.target.vocab_size, ResolvedSpec.of(spec), self.executor,
                                 self.head)
        session_id = self.sessions.open(verifier)
        try:
            prefill_ms = await verifier.prefill()
            yield target_pb2.VerifierResponse(opened=target_pb2.SessionOpened(
                session_id=session_id, prefill_ms=prefill_ms, vocab_size=self.target.vocab_size,
                counters=common_pb2.SessionCounters(forward_passes=verifier.forward_passes)))
            async for request in request_iterator:
                async for response in self._round(session_id, verifier, request, spec, request_iterator):
                    yield response
        finally:
            await self.sessions.close(session_id)

    async def _round(self, session_id: str, verifier: LocalVerifier, request: target_pb2.VerifierRequest,
                     spec: SessionSpec, requests: AsyncIterator[target_pb2.VerifierRequest],
                     ) -> AsyncIterator[target_pb2.VerifierResponse]:
        """One verdict for a block, or `server_tokens` verdicts streamed as they are generated."""
        if not request.HasField("block"):
            raise SessionStateError("open: a session is opened once; later messages must be blocks")
        self.sessions.get(session_id)  # NOT_FOUND once reaped for idling
        if request.block.session_id != session_id:
            raise SessionNotFound(f"session_id: {request.block.session_id[:8]!r} is not this stream's session")
        proposal = codec.proposal_from_pb(request.block, verifier.hidden_size, self.target.vocab_size)
        attributes = {"edgespec.round": proposal.round, "edgespec.session": session_id, "edgespec.k": proposal.k,
                      "edgespec.rule": spec.acceptance, "edgespec.target_model": self.target.name,
                      "edgespec.server_tokens": request.block.server_tokens}
        # the `verify` span ends with the block's last verdict, before it goes down the wire
        span = self.telemetry.tracer.start_span("verify", context=context_from(proposal.trace_context),
                                                attributes=attributes)
        verdicts_left = max(1, request.block.server_tokens)
        totals = {"edgespec.accepted": 0, "edgespec.verify_ms": 0.0, "edgespec.queue_ms": 0.0}  # over its verdicts
        try:
            async for response in self._answer(verifier, proposal, request.block.server_tokens, spec, requests):
                if response.HasField("verdict"):
                    self._observe(totals, response.verdict)
                    verdicts_left -= 1
                    if not verdicts_left:
                        span.set_attributes(totals)
                        span.end()
                yield response
        except Exception as exc:
            if verdicts_left:
                mark_error(span, exc)
            raise
        finally:
            if verdicts_left:
                span.set_attributes(totals)
                span.end()

    def _observe(self, totals: dict, verdict: target_pb2.Verdict) -> None:
        """A verdict's numbers into the `verify` span's totals and the target's metrics."""
        metrics = self.telemetry.metrics
        metrics.verify_seconds.observe(verdict.verify_ms / 1e3)
        metrics.verify_queue_seconds.observe(verdict.queue_ms / 1e3)
        totals["edgespec.accepted"] += verdict.accepted
        totals["edgespec.verify_ms"] += verdict.verify_ms
        totals["edgespec.queue_ms"] += verdict.queue_ms

    async def _answer(self, verifier: LocalVerifier, proposal, n: int, spec: SessionSpec,
                      requests: AsyncIterator[target_pb2.VerifierRequest]) -> AsyncIterator[target_pb2.VerifierResponse]:
        # committed so far + the correction this block carries + up to k drafts + bonus/correction
        committed = len(verifier.seq.tokens) - len(spec.prompt_ids) + (proposal.correction is not None)
        most = committed + max(proposal.k + 1, n)
        if most > spec.max_new_tokens:
            raise SessionStateError(f"max_new_tokens: this block could commit up to {most} tokens, past "
                                    f"the session's max_new_tokens {spec.max_new_tokens}")
        if n:
            async for verdict in verifier.autoregress(proposal, n):
                yield target_pb2.VerifierResponse(verdict=codec.verdict_to_pb(
                    verdict, rounds=verifier.round, draining=self.draining))
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
        verdict = await verifier.finish(pending)
        yield target_pb2.VerifierResponse(verdict=codec.verdict_to_pb(verdict, rounds=verifier.round,
                                                                      draining=self.draining))
