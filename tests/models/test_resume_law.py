"""Resumption keeps the law: a target session that breaks mid-generation and is reopened with
prompt + committed tokens (ResumingVerifier, with a derived seed) still samples the third token
from the target's exact marginal (chi-square over 1000 seeded runs, rejection sampling with
residual corrections), and greedy output is identical to target-only decoding."""

from __future__ import annotations

import collections

import grpc
import pytest
from test_policies_loop import PROMPT, _chi2_ok, _third_token_marginal

from edgespec.bench.baselines import target_only
from edgespec.core.draft_length import PolicyConfig, make_policy
from edgespec.core.loop import generate
from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.types import SamplingParams, SessionSpec
from edgespec.models.draft_runtime import torch_draft
from edgespec.models.local_drafter import LocalDrafter
from edgespec.models.local_verifier import LocalVerifier
from edgespec.models.presets import load_model
from edgespec.rpc.remote import StreamBroken
from edgespec.rpc.resume import ResumingVerifier


@pytest.fixture(scope="module")
def pair():
    return load_model("tiny", "target"), load_model("tiny", "draft")


class BreakingVerifier:
    """A verifier whose stream breaks once, when round `at` is sent (before it is answered)."""

    def __init__(self, inner: LocalVerifier, at: int) -> None:
        self.inner, self.at = inner, at

    async def verify(self, proposal):
        if proposal.round == self.at:
            raise StreamBroken("upstream: connection reset", grpc.StatusCode.UNAVAILABLE)
        return await self.inner.verify(proposal)

    async def close(self) -> None:
        await self.inner.close()


async def _run(pair, params: SamplingParams, n: int, break_at: int) -> tuple[list[int], ResumingVerifier]:
    target, draft = pair
    acceptance = "exact" if params.greedy else "rejection"
    resolved = ResolvedSpec.of(SessionSpec(prompt_ids=PROMPT, params=params, acceptance=acceptance, max_new_tokens=n))

    async def open_target(spec: ResolvedSpec) -> LocalVerifier:
        verifier = LocalVerifier(target.model, target.vocab_size, spec)
        await verifier.prefill()
        return verifier
    verifier = ResumingVerifier(BreakingVerifier(await open_target(resolved), break_at), resolved, open_target)
    drafter = LocalDrafter(torch_draft(draft), resolved)
    await drafter.prefill()
    tokens = [t async for step in generate(drafter, verifier, make_policy("fixed", PolicyConfig(k=1)), n)
              for t in step.tokens]
    await verifier.close()
    await drafter.close()
    return tokens, verifier


async def test_greedy_output_is_identical_after_a_resume(pair):
    tokens, verifier = await _run(pair, SamplingParams(), 30, break_at=3)
    assert verifier.resumes == 1
    assert tokens == target_only(pair[0].model, list(PROMPT), 30, (pair[0].vocab_size + 1,)).token_ids


async def test_sampling_law_survives_a_resume(pair):
    shortlist = SamplingParams(temperature=1.0, top_k=3)
    exact = _third_token_marginal(pair[0].model, shortlist)
    counts, resumes = collections.Counter(), 0
    for seed in range(1000):   # k = 1: the break at round 1 falls before the third token
        tokens, verifier = await _run(pair, SamplingParams(temperature=1.0, top_k=3, seed=seed), 4, break_at=1)
        counts[tokens[2]] += 1
        resumes += verifier.resumes
    assert resumes == 1000
    assert _chi2_ok(counts, exact)
