"""core/loop.py with a scripted drafter and verifier: no model, no tokenizer, no transport.

The target's output is a fixed sequence; the draft agrees with it except at scripted positions;
the verifier applies exact match. So every expectation below is computed by hand from the script."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from edgespec.core.channel import ChannelMeter
from edgespec.core.draft_length import FixedK, PolicyConfig, ServerOnly
from edgespec.core.loop import generate
from edgespec.core.types import Committed, DraftPlan, Proposal, StepResult, Verdict

TARGET = tuple(range(100, 160))   # what the target generates, token by token
WRONG = {2, 3, 9}                 # positions where the draft guesses wrong


class ScriptedDrafter:
    """Drafts TARGET except at WRONG positions; commits what the verdict says."""

    def __init__(self) -> None:
        self.pos, self.round, self.plans, self.last = 0, 0, [], None

    async def propose(self, plan: DraftPlan) -> Proposal:
        self.plans.append(plan)
        tokens = tuple(TARGET[i] + (1000 if i in WRONG else 0) for i in range(self.pos, self.pos + plan.k))
        self.last = Proposal(round=self.round, tokens=tokens, draft_ms=1.0)
        return self.last

    async def commit(self, verdict: Verdict) -> Committed:
        assert verdict.round == self.round
        committed = self.last.tokens[:verdict.accepted] + (verdict.token,)
        self.pos, self.round = self.pos + len(committed), self.round + 1
        return Committed(committed)

    async def close(self) -> None: ...


class ExactVerifier:
    """Accepts the longest prefix equal to TARGET, then gives the target's own token."""

    def __init__(self) -> None:
        self.pos, self.round, self.passes, self.proposals = 0, 0, 1, []

    async def verify(self, proposal: Proposal) -> Verdict:
        assert proposal.round == self.round
        self.proposals.append(proposal)
        await asyncio.sleep(0.004)  # the "network": a round trip longer than verify_ms
        accepted = 0
        while accepted < proposal.k and proposal.tokens[accepted] == TARGET[self.pos + accepted]:
            accepted += 1
        token = TARGET[self.pos + accepted]
        self.pos, self.round, self.passes = self.pos + accepted + 1, self.round + 1, self.passes + 1
        return Verdict(round=proposal.round, accepted=accepted, token=token, verify_ms=2.0,
                       target_forward_passes=self.passes, bytes_up=10 * (proposal.k + 1), bytes_down=8)

    async def autoregress(self, proposal: Proposal, n: int) -> AsyncIterator[Verdict]:
        for _ in range(n):
            yield await self.verify(Proposal(round=self.round, tokens=()))

    async def close(self) -> None: ...


async def _run(policy, n: int, stop=(), channel=None, verifier=None) -> tuple[list[StepResult], ScriptedDrafter]:
    drafter = ScriptedDrafter()
    steps = [step async for step in generate(drafter, verifier or ExactVerifier(), policy, n, stop, channel)]
    return steps, drafter


async def test_exact_match_output_is_the_target_sequence_and_counts_follow_the_script():
    steps, _ = await _run(FixedK(PolicyConfig(k=4)), 20)
    assert sum((s.tokens for s in steps), ()) == TARGET[:20]
    # blocks start at 0, 3 (2 wrong: 2 accepted + correction), 4 (3 wrong), 9, 10 (9 wrong), 15, 20
    assert [(s.drafted, s.accepted) for s in steps] == [(4, 2), (4, 0), (4, 4), (4, 0), (4, 4), (4, 4)]
    assert [len(s.tokens) for s in steps] == [3, 1, 5, 1, 5, 5]
    assert steps[-1].finish_reason == "length" and all(s.finish_reason is None for s in steps[:-1])
    assert [s.target_forward_passes for s in steps] == list(range(2, 2 + len(steps)))
    assert all(s.verify_ms == 2.0 and s.draft_ms == 1.0 for s in steps)


async def test_the_last_block_is_clipped_to_the_budget():
    steps, drafter = await _run(FixedK(PolicyConfig(k=8)), 11)
    assert sum((s.tokens for s in steps), ()) == TARGET[:11]
    assert all(p.k + 1 <= 11 for p in drafter.plans)
    # budget left before each plan: the round commits at most k + 1 of it
    left = 11
    for plan, step in zip(drafter.plans, steps):
        assert plan.k == min(8, left - 1)
        left -= len(step.tokens)


async def test_a_stop_token_ends_the_generation_and_is_kept():
    steps, _ = await _run(FixedK(PolicyConfig(k=4)), 50, stop={TARGET[6]})
    assert sum((s.tokens for s in steps), ()) == TARGET[:7]
    assert steps[-1].finish_reason == "stop"


async def test_server_only_rounds_stream_one_target_token_per_step():
    steps, drafter = await _run(ServerOnly(PolicyConfig()), 6)
    assert sum((s.tokens for s in steps), ()) == TARGET[:6]
    assert all(s.server and len(s.tokens) == 1 for s in steps)
    assert drafter.plans[0].k == 0 and all(p.k == 1 for p in drafter.plans[1:])  # shadow drafts


async def test_a_channel_probe_sees_every_round_and_stamps_each_block():
    class Recording(ChannelMeter):
        def __init__(self) -> None:
            super().__init__()
            self.seen = []

        def observe(self, step: StepResult) -> None:
            self.seen.append(step)
            super().observe(step)

    channel, verifier = Recording(), ExactVerifier()
    steps, _ = await _run(FixedK(PolicyConfig(k=2)), 10, channel=channel, verifier=verifier)
    assert [(s.drafted, s.accepted, s.bytes_up) for s in channel.seen] == [
        (s.drafted, s.accepted, s.bytes_up) for s in steps]
    assert all(p.channel is not None for p in verifier.proposals)
    assert verifier.proposals[0].channel.rtt_ms == 0.0       # nothing measured before the first round
    assert verifier.proposals[-1].channel.rtt_ms > 0.0       # measured from the rounds since


@pytest.mark.parametrize("k", [1, 2, 5])
async def test_any_draft_length_gives_the_same_output(k):
    steps, _ = await _run(FixedK(PolicyConfig(k=k)), 30)
    assert sum((s.tokens for s in steps), ()) == TARGET[:30]
