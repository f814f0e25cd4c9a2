"""The speculative decoding loop: one async generator, identical for local and remote drafters
and verifiers. It knows nothing about models, tokenizers or transport — only the protocols.

A round is either speculative (draft a block, verify it, commit) or, when the policy asks for
server-only mode, a run of tokens the target generates alone and streams back, which the draft
commits as they arrive so it can resume speculation at any point.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection
from contextlib import aclosing
from dataclasses import replace

from edgespec.core.channel import ChannelProbe
from edgespec.core.draft_length import DraftLengthPolicy
from edgespec.core.observer import NullObserver, RoundObserver, RoundScope
from edgespec.core.types import DraftPlan, Drafter, StepResult, Verifier


async def generate(drafter: Drafter, verifier: Verifier, policy: DraftLengthPolicy,
                   max_new_tokens: int, stop_token_ids: Collection[int] = (),
                   channel: ChannelProbe | None = None,
                   observer: RoundObserver | None = None) -> AsyncIterator[StepResult]:
    """Run rounds until `max_new_tokens` are committed or a stop token is; yield each step.
    With `channel`, each block carries the measured link (channel-aware acceptance rules);
    `observer` sees every round (telemetry) and lends it a trace context to send along."""
    produced, observer = 0, observer or NullObserver()
    while produced < max_new_tokens:
        plan = _clip(policy.plan(), max_new_tokens - produced)               # 1. plan the round
        with observer.round(plan) as scope:
            plan = replace(plan, trace_context=scope.carrier)
            steps = (_server_run(drafter, verifier, plan, scope) if plan.server_tokens
                     else _speculative_round(drafter, verifier, plan, channel, scope))  # 2-4. draft, verify, commit
            async with aclosing(steps):
                async for step in steps:
                    policy.observe(step)                                     # 5. learn from it
                    if channel is not None:
                        channel.observe(step)
                    tokens, finish = _truncate(step.tokens, stop_token_ids, max_new_tokens - produced)
                    produced += len(tokens)
                    finish = finish or ("length" if produced >= max_new_tokens else None)
                    step = replace(step, tokens=tokens, finish_reason=finish)
                    scope.record(step)
                    yield step
                    if finish:
                        return


async def _speculative_round(drafter: Drafter, verifier: Verifier, plan: DraftPlan,
                             channel: ChannelProbe | None, scope: RoundScope) -> AsyncIterator[StepResult]:
    t0 = time.perf_counter()
    proposal = await drafter.propose(plan)                                   # 2. draft <= k tokens
    proposal = replace(proposal, trace_context=plan.trace_context,
                       channel=channel.state() if channel is not None else proposal.channel)
    t1 = time.perf_counter()
    scope.mark("verify_sent")
    verdict = await verifier.verify(proposal)                                # 3. one target pass + rule
    t2 = time.perf_counter()
    scope.mark("verdict_received")
    committed = await drafter.commit(verdict)                                # 4. keep accepted, roll back
    yield StepResult(
        tokens=committed.tokens, drafted=proposal.k, accepted=verdict.accepted, draft_ms=proposal.draft_ms,
        verify_ms=verdict.verify_ms, round_trip_ms=(t2 - t1) * 1e3, round_ms=(time.perf_counter() - t0) * 1e3,
        bytes_up=verdict.bytes_up, bytes_down=verdict.bytes_down,
        target_forward_passes=verdict.target_forward_passes, predrafted=proposal.predrafted,
        relaxed_accepted=verdict.relaxed_accepted, queue_ms=verdict.queue_ms)


async def _server_run(drafter: Drafter, verifier: Verifier, plan: DraftPlan,
                      scope: RoundScope) -> AsyncIterator[StepResult]:
    """Server-only mode: the target streams n tokens. While the next one is generated, the draft
    shadow-drafts it (one token, never sent) and commits the target's token: its KV cache stays
    current and `drafted`/`accepted` of these steps measure first-position acceptance for free."""
    n = plan.server_tokens
    proposal = await drafter.propose(DraftPlan(k=0, trace_context=plan.trace_context))
    last = time.perf_counter()
    scope.mark("verify_sent")
    async for verdict in verifier.autoregress(replace(proposal, trace_context=plan.trace_context), n):
        committed = await drafter.commit(verdict)
        now = time.perf_counter()
        yield StepResult(
            tokens=committed.tokens, drafted=proposal.k, accepted=int(proposal.tokens[:1] == (verdict.token,)),
            draft_ms=proposal.draft_ms, verify_ms=verdict.verify_ms, round_trip_ms=(now - last) * 1e3,
            round_ms=(now - last) * 1e3, bytes_up=verdict.bytes_up, bytes_down=verdict.bytes_down,
            target_forward_passes=verdict.target_forward_passes, server=True, queue_ms=verdict.queue_ms)
        last = now
        n -= 1
        if n:
            proposal = await drafter.propose(DraftPlan(k=1, trace_context=plan.trace_context))  # shadow draft


def _clip(plan: DraftPlan, budget: int) -> DraftPlan:
    """Never draft or stream past the request's remaining budget (a round commits k + 1)."""
    if plan.server_tokens:
        return DraftPlan(k=0, server_tokens=min(plan.server_tokens, budget))
    return DraftPlan(k=max(0, min(plan.k, budget - 1)), stop=plan.stop, ahead=plan.ahead)


def _truncate(tokens: tuple[int, ...], stop_token_ids: Collection[int],
              budget: int) -> tuple[tuple[int, ...], str | None]:
    """Cut `tokens` after the first stop token (kept) and to `budget`; say whether it stopped."""
    for i, token in enumerate(tokens[:budget]):
        if token in stop_token_ids:
            return tokens[: i + 1], "stop"
    return tokens[:budget], None
