"""DrafterServicer: the thin gRPC face of the draft model — open a LocalDrafter per stream, then
answer `propose` with a block and `commit` with the committed tokens. For orchestrators that run
in another process; the embedded orchestrator calls LocalDrafter directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import Executor

import grpc

from edgespec.core.acceptance import RULES
from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.types import MAX_DRAFT_TOKENS, Proposal, SessionStateError, Verdict
from edgespec.draft.config import DraftConfig
from edgespec.models.draft_runtime import LoadedDraft
from edgespec.models.local_drafter import LocalDrafter
from edgespec.rpc import codec
from edgespec.rpc.caller import caller_of
from edgespec.rpc.sessions import SessionRegistry
from edgespec.telemetry.observed_drafter import traced_propose
from edgespec.telemetry.runtime import Telemetry
from edgespec.v1 import common_pb2, draft_pb2, draft_pb2_grpc


class DrafterServicer(draft_pb2_grpc.DrafterServicer):
    """Serves drafting sessions over one loaded draft model."""

    def __init__(self, draft: LoadedDraft, config: DraftConfig, executor: Executor, telemetry: Telemetry) -> None:
        self.draft, self.config, self.executor, self.telemetry = draft, config, executor, telemetry
        self.sessions: SessionRegistry[LocalDrafter] = SessionRegistry(
            config.max_sessions, config.idle_ttl_s, config.open_ttl_s, config.per_caller_cap)
        self.reaper: asyncio.Task | None = None
        telemetry.metrics.live_sessions.labels(service="draft").set_function(lambda: len(self.sessions))

    def start(self) -> None:
        self.reaper = asyncio.create_task(self.sessions.reap_forever())

    async def shutdown(self) -> None:
        if self.reaper is not None:
            self.reaper.cancel()
        await self.sessions.close_all()

    async def Info(self, request, context) -> common_pb2.ModelInfo:
        return common_pb2.ModelInfo(
            model=self.draft.name, vocab_size=self.draft.vocab_size, hidden_size=self.draft.hidden_size,
            max_prompt_tokens=self.config.max_prompt_tokens, max_new_tokens=self.config.max_new_tokens,
            max_draft_tokens=MAX_DRAFT_TOKENS, acceptance_rules=sorted(RULES),
            live_sessions=len(self.sessions), max_sessions=self.config.max_sessions)

    async def Session(self, request_iterator: AsyncIterator[draft_pb2.DrafterRequest],
                      context: grpc.aio.ServicerContext) -> AsyncIterator[draft_pb2.DrafterResponse]:
        first = await anext(request_iterator, None)
        if first is None or not first.HasField("open"):
            raise SessionStateError("open: the first message of a session must be `open`")
        spec = codec.spec_from_pb(first.open, self.config.max_prompt_tokens)
        spec.check(self.draft.vocab_size, self.config.max_prompt_tokens, self.config.max_new_tokens)
        drafter = LocalDrafter(self.draft, ResolvedSpec.of(spec), self.executor)
        session_id = self.sessions.open(drafter, caller_of(context))
        self.telemetry.metrics.sessions_opened.labels(service="draft").inc()
        try:
            with self.sessions.busy(session_id):
                prefill_ms = await drafter.prefill()
            yield draft_pb2.DrafterResponse(opened=common_pb2.SessionOpened(
                session_id=session_id, prefill_ms=prefill_ms, vocab_size=self.draft.vocab_size,
                counters=common_pb2.SessionCounters(forward_passes=drafter.seq.forward_passes)))
            budget = _Budget(spec.max_new_tokens)
            async for request in self.sessions.requests(session_id, request_iterator):
                with self.sessions.busy(session_id):  # NOT_FOUND once reaped; never reaped mid-answer
                    response = await self._answer(drafter, session_id, request, budget)
                yield response
        finally:
            await self.sessions.close(session_id)

    async def _answer(self, drafter: LocalDrafter, session_id: str, request: draft_pb2.DrafterRequest,
                      budget: _Budget) -> draft_pb2.DrafterResponse:
        kind = request.WhichOneof("kind")
        if kind == "propose":
            plan = codec.plan_from_pb(request.propose)
            budget.check_open()
            proposal = await traced_propose(drafter, plan, self.telemetry, self.draft.name)
            return draft_pb2.DrafterResponse(block=codec.proposal_to_pb(proposal, session_id))
        if kind == "commit":
            verdict = codec.verdict_from_pb(request.commit, self.draft.vocab_size)
            _check_commit(verdict, drafter.last)
            budget.check_commit(verdict.accepted + 1)
            committed = await drafter.commit(verdict)
            budget.used += len(committed.tokens)
            return draft_pb2.DrafterResponse(committed=draft_pb2.Committed(token_ids=list(committed.tokens)))
        raise SessionStateError("open: a session is opened once; later messages are propose or commit")


class _Budget:
    """A session's max_new_tokens and the tokens its commits have used (the target keeps the same
    budget; a Drafter session keeps it too, so its KV cache cannot grow past what was opened)."""

    def __init__(self, max_new_tokens: int) -> None:
        self.max_new_tokens, self.used = max_new_tokens, 0

    def check_open(self) -> None:
        if self.used >= self.max_new_tokens:
            raise SessionStateError(f"max_new_tokens: the session's {self.max_new_tokens} tokens are committed")

    def check_commit(self, n: int) -> None:
        if self.used + n > self.max_new_tokens:
            raise SessionStateError(f"max_new_tokens: committing {n} more tokens would pass the session's "
                                    f"max_new_tokens {self.max_new_tokens} ({self.used} committed)")


def _check_commit(verdict: Verdict, last: Proposal | None) -> None:
    """A verdict the session's last proposal can take (ValueError names the field); order errors
    are the drafter's to report (FAILED_PRECONDITION)."""
    if last is None or verdict.round != last.round:
        return
    if not 0 <= verdict.accepted <= last.k:
        raise ValueError(f"accepted: {verdict.accepted} is outside 0..{last.k}")
    if verdict.residual_p is not None and verdict.accepted == last.k:
        raise ValueError("residual_p: a verdict accepting the whole block (accepted == k) carries the bonus "
                         "token, not residual_p")
