"""Draft-side telemetry: `traced_propose` runs one proposal as a `draft` span (child of the round
whose trace context the plan carries) and feeds `edgespec_draft_seconds`; `ObservedDrafter`
wraps an in-process Drafter with it (the embedded orchestrator). The draft service's servicer
calls `traced_propose` directly.
"""

from __future__ import annotations

from edgespec.core.types import Committed, DraftPlan, Drafter, Proposal, Verdict
from edgespec.telemetry.runtime import Telemetry
from edgespec.telemetry.span_attrs import SpanAttr
from edgespec.telemetry.spans import span_scope
from edgespec.telemetry.tracing import context_from


async def traced_propose(drafter: Drafter, plan: DraftPlan, telemetry: Telemetry, model: str) -> Proposal:
    """The span names no session: the draft's own session id differs from the target's that
    `round` and `verify` carry; the span's parent (the round) says which generation it is."""
    attributes = {SpanAttr.K_PLANNED: plan.k, SpanAttr.DRAFT_MODEL: model}
    with span_scope(telemetry.tracer, "draft", context_from(plan.trace_context), attributes) as span:
        proposal = await drafter.propose(plan)
        span.set_attributes({SpanAttr.K: proposal.k, SpanAttr.ROUND: proposal.round,
                             SpanAttr.DRAFT_MS: proposal.draft_ms, SpanAttr.PREDRAFTED: proposal.predrafted})
    telemetry.metrics.draft_seconds.observe(proposal.draft_ms / 1e3)
    return proposal


class ObservedDrafter:
    """A Drafter whose proposals are `draft` spans and metrics; everything else passes through."""

    def __init__(self, drafter: Drafter, telemetry: Telemetry, model: str) -> None:
        self.drafter, self.telemetry, self.model = drafter, telemetry, model

    async def propose(self, plan: DraftPlan) -> Proposal:
        return await traced_propose(self.drafter, plan, self.telemetry, self.model)

    async def commit(self, verdict: Verdict) -> Committed:
        return await self.drafter.commit(verdict)

    async def close(self) -> None:
        await self.drafter.close()
