"""Every draft-length policy through the real loop on the tiny pair: greedy output equals
target-only decoding (fixed with proactive drafting, heuristic, AdaEDL, SVIP, auto with and without
proactive drafting, forced server-only fallback, server); proactive drafting really reuses tokens;
and at temperature > 0 the third generated token's law matches the target's exact marginal with
proactive drafting and in server-only mode (and a draft-only sampler is caught by the same test)."""

from __future__ import annotations

import collections

import pytest
import torch

from edgespec.bench.baselines import target_only
from edgespec.core.draft_length import Auto, LinkEstimates, PolicyConfig, make_policy
from edgespec.core.loop import generate
from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.sampling import probs_from_logits
from edgespec.core.stats import SpecDecodeStats
from edgespec.core.types import DraftPlan, SamplingParams, SessionSpec
from edgespec.models.local_drafter import LocalDrafter
from edgespec.models.local_verifier import LocalVerifier
from edgespec.models.draft_runtime import torch_draft
from edgespec.models.presets import load_model

PROMPT = (3, 89, 87, 73, 86, 203, 76, 77, 4, 203, 40, 41)


@pytest.fixture(scope="module")
def pair():
    return load_model("tiny", "target"), load_model("tiny", "draft")


async def _run(pair, policy, n: int, params=SamplingParams(), prompt=PROMPT) -> tuple[list[int], SpecDecodeStats]:
    target, draft = pair
    acceptance = "exact" if params.greedy else "rejection"
    spec = ResolvedSpec.of(SessionSpec(prompt_ids=prompt, params=params, acceptance=acceptance, max_new_tokens=n))
    verifier, drafter = LocalVerifier(target.model, target.vocab_size, spec), LocalDrafter(torch_draft(draft), spec)
    await verifier.prefill()
    await drafter.prefill()
    stats, tokens = SpecDecodeStats(), []
    async for step in generate(drafter, verifier, policy, n, target.eos_token_ids):
        stats.observe(step)
        tokens.extend(step.tokens)
    await drafter.close()
    assert stats.target_forward_passes == 1 + stats.rounds + stats.server_tokens
    return tokens, stats


def _fallen_back_auto() -> Auto:
    """auto on a link where the draft is slow and the round trip long: server-only wins."""
    link = LinkEstimates()
    for k in (1, 2, 3, 4):
        link.verify.add(k, 1.0 + 0.01 * k)
        link.rtt.add(500.0)
        link.draft_ms.add(50.0)
    link.verify.add(0, 1.0)
    return Auto(PolicyConfig(k=3, early_stop="none"), link)


CASES = {
    "fixed+proactive": lambda: make_policy("fixed", PolicyConfig(k=3, proactive=True)),
    "heuristic": lambda: make_policy("heuristic", PolicyConfig(k=2, k_max=10)),
    "adaedl": lambda: make_policy("adaedl", PolicyConfig(k_max=8, adaedl_lambda=0.9)),
    "svip": lambda: make_policy("svip", PolicyConfig(k_max=8, svip_h=0.8)),
    "auto": lambda: make_policy("auto", PolicyConfig(k=3)),
    "auto+proactive+svip": lambda: make_policy("auto", PolicyConfig(k=3, proactive=True, early_stop="svip")),
    "auto fallen back": _fallen_back_auto,
    "server": lambda: make_policy("server"),
}


@pytest.mark.parametrize("case", CASES)
async def test_every_policy_keeps_greedy_parity(pair, case):
    target = pair[0]
    tokens, stats = await _run(pair, CASES[case](), 60)
    assert tokens == target_only(target.model, list(PROMPT), 60, target.eos_token_ids).token_ids
    if case in ("server", "auto fallen back"):
        assert stats.server_tokens > 0


class _Scripted:
    """Alternates server-only chunks and speculative rounds, as auto does when it switches."""

    name = "scripted"

    def __init__(self, plans: list[DraftPlan]) -> None:
        self.plans, self.i, self.steps = plans, 0, []

    def plan(self) -> DraftPlan:
        self.i += 1
        return self.plans[(self.i - 1) % len(self.plans)]

    def observe(self, step) -> None:
        self.steps.append(step)


async def test_switching_between_server_and_speculative_mode_keeps_parity(pair):
    policy = _Scripted([DraftPlan(k=0, server_tokens=7), DraftPlan(k=3), DraftPlan(k=3, ahead=4)])
    tokens, stats = await _run(pair, policy, 60)
    assert tokens == target_only(pair[0].model, list(PROMPT), 60, pair[0].eos_token_ids).token_ids
    assert stats.server_tokens >= 14 and stats.rounds >= 4 and stats.mode_switches >= 3
    shadow = [s for s in policy.steps if s.server and s.drafted]
    assert shadow and 0 < sum(s.accepted for s in shadow) < len(shadow)  # shadow drafts measure acceptance


async def test_entropy_stops_shorten_drafts(pair):
    _, loose = await _run(pair, make_policy("svip", PolicyConfig(k_max=8, svip_h=100.0)), 40)
    _, tight = await _run(pair, make_policy("svip", PolicyConfig(k_max=8, svip_h=0.5)), 40)
    assert loose.drafted_tokens / loose.rounds == 8 or loose.rounds * 8 > loose.drafted_tokens
    assert tight.drafted_tokens / tight.rounds < loose.drafted_tokens / loose.rounds


class _Recording:
    """A policy that keeps the steps it observes."""

    def __init__(self, inner) -> None:
        self.inner, self.steps, self.name = inner, [], inner.name

    def plan(self) -> DraftPlan:
        return self.inner.plan()

    def observe(self, step) -> None:
        self.steps.append(step)
        self.inner.observe(step)


async def test_proactive_drafting_reuses_pre_drafted_tokens(pair):
    ahead, plain = (_Recording(make_policy("fixed", PolicyConfig(k=2, proactive=p))) for p in (True, False))
    tokens, stats = await _run(pair, ahead, 60)
    plain_tokens, _ = await _run(pair, plain, 60)
    assert tokens == plain_tokens == target_only(pair[0].model, list(PROMPT), 60, pair[0].eos_token_ids).token_ids
    # greedy drafting is deterministic: pre-drafted tokens are the very ones the next round drafts
    assert [(s.drafted, s.accepted) for s in ahead.steps] == [(s.drafted, s.accepted) for s in plain.steps]
    assert stats.predrafted_tokens == sum(s.predrafted for s in ahead.steps) > 0
    for before, step in zip(ahead.steps, ahead.steps[1:]):
        assert step.predrafted <= step.drafted
        if step.predrafted:  # reused only after a fully accepted block (whose bonus was the guess)
            assert before.accepted == before.drafted
    assert ahead.steps[0].predrafted == 0


def _third_token_marginal(model, params: SamplingParams, prompt=PROMPT) -> dict[int, float]:
    """Exact law of the 3rd sampled token: sum over the (top-k limited) paths of the first two."""
    def dist(ids):
        with torch.inference_mode():
            return probs_from_logits(model(torch.tensor([list(ids)])).logits[0, -1], params)
    marginal: dict[int, float] = collections.defaultdict(float)
    p1 = dist(prompt)
    for a in torch.nonzero(p1).flatten().tolist():
        p2 = dist(prompt + (a,))
        for b in torch.nonzero(p2).flatten().tolist():
            p3 = dist(prompt + (a, b))
            for c in torch.nonzero(p3).flatten().tolist():
                marginal[c] += float(p1[a] * p2[b] * p3[c])
    return marginal


def _chi2_ok(counts: collections.Counter, exact: dict[int, float]) -> bool:
    """Pearson's chi-square against the exact law, at about the 1e-4 level (Wilson-Hilferty-free
    bound: df + 4.5 sqrt(2 df)); tokens the law gives 0 must never appear."""
    n = sum(counts.values())
    if any(exact.get(t, 0.0) == 0.0 for t in counts):
        return False
    chi2 = sum((counts.get(t, 0) - n * p) ** 2 / (n * p) for t, p in exact.items())
    df = len(exact) - 1
    return chi2 < df + 4.5 * (2 * df) ** 0.5


@pytest.mark.parametrize("case", ["fixed+proactive", "auto fallen back"])
async def test_sampling_distribution_is_the_targets(pair, case):
    target, draft = pair
    shortlist = SamplingParams(temperature=1.0, top_k=3)
    exact = _third_token_marginal(target.model, shortlist)
    runs, counts, predrafted = 1000, collections.Counter(), 0
    for seed in range(runs):
        policy = make_policy("fixed", PolicyConfig(k=1, proactive=True)) if case == "fixed+proactive" \
            else _fallen_back_auto()
        tokens, stats = await _run(pair, policy, 4, SamplingParams(temperature=1.0, top_k=3, seed=seed))
        counts[tokens[2]] += 1
        predrafted += stats.predrafted_tokens
    assert _chi2_ok(counts, exact)
    if case == "fixed+proactive":
        assert predrafted > 30  # the third token often came from a pre-drafted block
    # the same test rejects a sampler with the draft's law
    draft_law = _third_token_marginal(draft.model, shortlist)
    assert not _chi2_ok(collections.Counter({t: round(p * runs) for t, p in draft_law.items()}), exact)
