"""The lossy rules in single-process mode on the tiny pair: `dropmatch` with p_drop = 0 commits
exactly the target's greedy tokens (both criteria, real post-norm hidden states and LM head);
the drafter ships top-k q only when the rule asks for it; a mismatch-first verifier names the
positions that failed exact match and decides once they are filled in."""

from __future__ import annotations

import pytest

from edgespec.bench.baselines import target_only
from edgespec.core.acceptance_params import AcceptanceParams
from edgespec.core.draft_length import FixedK
from edgespec.core.loop import generate
from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.types import DraftPlan, SamplingParams, SessionSpec
from edgespec.models.local_drafter import LocalDrafter
from edgespec.models.local_verifier import LocalVerifier
from edgespec.models.draft_runtime import torch_draft
from edgespec.models.presets import load_model

PROMPT = [3, 89, 87, 73, 86, 203, 76, 77, 4, 203, 40, 41]


@pytest.fixture(scope="module")
def pair():
    return load_model("tiny", "target"), load_model("tiny", "draft")


async def _session(pair, acceptance: str, params: AcceptanceParams, hidden: bool = False, n: int = 40):
    target, draft = pair
    spec = ResolvedSpec.of(SessionSpec(prompt_ids=tuple(PROMPT), params=SamplingParams(), acceptance=acceptance,
                                       max_new_tokens=n, acceptance_params=params, send_hidden_states=hidden,
                                       draft_hidden_size=draft.hidden_size if hidden else 0))
    verifier, drafter = LocalVerifier(target.model, target.vocab_size, spec), LocalDrafter(torch_draft(draft), spec)
    await verifier.prefill()
    await drafter.prefill()
    return verifier, drafter


@pytest.mark.parametrize("criterion", ["naive", "js"])
async def test_dropmatch_without_dropout_is_exact(pair, criterion):
    target, _ = pair
    verifier, drafter = await _session(pair, "dropmatch", AcceptanceParams(dropout_p=0.0, dropout_criterion=criterion))
    tokens, relaxed = [], 0
    async for step in generate(drafter, verifier, FixedK(5), 40, target.eos_token_ids):
        tokens.extend(step.tokens)
        relaxed += step.relaxed_accepted
    assert tokens == target_only(target.model, PROMPT, 40, target.eos_token_ids).token_ids
    assert relaxed == 0


async def test_top_q_only_when_the_js_criterion_asks(pair):
    _, drafter = await _session(pair, "dropmatch", AcceptanceParams(dropout_criterion="js", draft_top_k=7))
    proposal = await drafter.propose(DraftPlan(k=3))
    assert proposal.top_q.indices.shape == (3, 7) and proposal.top_q.probs.shape == (3, 7)
    assert float(proposal.top_q.probs.sum(-1).max()) <= 1.0 + 1e-6
    _, drafter = await _session(pair, "dropmatch", AcceptanceParams(dropout_criterion="naive"))
    assert (await drafter.propose(DraftPlan(k=3))).top_q is None


async def test_mismatch_first_names_the_failed_positions(pair):
    params = AcceptanceParams(semantic_upload="mismatch-first", semantic_threshold=1.0, semantic_threshold_min=1.0)
    verifier, drafter = await _session(pair, "semantic", params, hidden=True)
    proposal = await drafter.propose(DraftPlan(k=8))
    pending = await verifier.begin(proposal.__class__(**{**proposal.__dict__, "hidden_states": None}))
    argmax = pending.logits[:8].argmax(-1).tolist()
    assert list(pending.missing) == [i for i, (a, x) in enumerate(zip(argmax, proposal.tokens)) if a != x]
    filled = pending.with_hidden(proposal.hidden_states[list(pending.missing)], proposal.hidden_states.shape[1]) \
        if pending.missing else pending
    verdict = await verifier.finish(filled)
    assert verdict.relaxed_accepted == 0  # threshold 1.0: nothing beyond exact match
    assert verdict.accepted == (pending.missing[0] if pending.missing else 8)


def test_semantic_head_file_round_trip_and_projection_check(pair, tmp_path):
    import torch

    from edgespec.core.acceptance.semantic_score import FEATURES, SemanticHead
    from edgespec.models.semantic_head import load_head, save_head
    target, _ = pair
    head = SemanticHead(weights=torch.arange(len(FEATURES), dtype=torch.float32), bias=0.5,
                        projection=torch.zeros(target.hidden_size, 32))
    save_head(head, tmp_path / "head.pt")
    back = load_head(tmp_path / "head.pt")
    assert torch.equal(back.weights, head.weights) and back.bias == 0.5 and back.projection.shape == (64, 32)
    spec = ResolvedSpec.of(SessionSpec(prompt_ids=tuple(PROMPT), params=SamplingParams(), acceptance="semantic",
                                       max_new_tokens=8, send_hidden_states=True, draft_hidden_size=32))
    LocalVerifier(target.model, target.vocab_size, spec, head=back)       # 32 -> 64 projection: fine
    with pytest.raises(ValueError, match="draft_hidden_size"):
        LocalVerifier(target.model, target.vocab_size, spec)              # no projection: refused
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(ValueError, match="semantic_head"):
        load_head(tmp_path / "bad.pt")
