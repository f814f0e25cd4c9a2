"""Recorded proposals for `edgespec bench capacity`: one real speculative run per prompt (the
draft on its runtime, the target alone in process, greedy `exact`, fixed k), keeping every block
the draft proposed (token ids and q(x) per position) and the verdict it got. The capacity bench
replays these blocks from simulated devices, so no draft model runs while the target is measured.
Not the replay and not the report.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgespec.core.draft_length import FixedK
from edgespec.core.loop import generate
from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.types import DraftPlan, Proposal, SamplingParams, SessionSpec, Verdict


@dataclass(frozen=True)
class Block:
    """One recorded round: what the draft proposed and what the target answered alone."""

    tokens: tuple[int, ...]
    q_probs: tuple[float, ...]
    accepted: int
    token: int | None


@dataclass(frozen=True)
class Recording:
    """A prompt's recorded run."""

    prompt_id: str
    prompt_ids: tuple[int, ...]
    blocks: tuple[Block, ...]
    output: tuple[int, ...]

    @property
    def tau(self) -> float:
        """Committed tokens per round (counts the bonus or correction)."""
        return sum(b.accepted + 1 for b in self.blocks) / max(1, len(self.blocks))


def exact_spec(prompt_ids, max_new_tokens: int) -> ResolvedSpec:
    return ResolvedSpec.of(SessionSpec(prompt_ids=tuple(prompt_ids), params=SamplingParams(),
                                       acceptance="exact", max_new_tokens=max_new_tokens))


class _Recorder:
    """A Drafter passing every call through and keeping each proposal with its verdict."""

    def __init__(self, drafter) -> None:
        self.drafter, self.proposals, self.verdicts = drafter, [], []

    async def propose(self, plan: DraftPlan) -> Proposal:
        proposal = await self.drafter.propose(plan)
        self.proposals.append(proposal)
        return proposal

    async def commit(self, verdict: Verdict):
        self.verdicts.append(verdict)
        return await self.drafter.commit(verdict)


async def record(target, draft, prompt_id: str, prompt_ids: list[int], k: int, max_new_tokens: int) -> Recording:
    """Run the real draft against the target alone (in process) and keep its blocks."""
    from edgespec.models.local_drafter import LocalDrafter
    from edgespec.models.local_verifier import LocalVerifier
    resolved = exact_spec(prompt_ids, max_new_tokens)
    verifier = LocalVerifier(target.model, target.vocab_size, resolved)
    drafter = LocalDrafter(draft, resolved)
    recorder, output = _Recorder(drafter), []
    try:
        await verifier.prefill()
        await drafter.prefill()
        async for step in generate(recorder, verifier, FixedK(k), max_new_tokens):   # no stop: fixed length
            output.extend(step.tokens)
    finally:
        await drafter.close()
        await verifier.close()
    blocks = tuple(Block(tuple(p.tokens), tuple(p.q_probs), v.accepted, v.token)
                   for p, v in zip(recorder.proposals, recorder.verdicts))
    return Recording(prompt_id, tuple(prompt_ids), blocks, tuple(output))
