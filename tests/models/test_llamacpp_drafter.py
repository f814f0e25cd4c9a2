"""The llama.cpp draft runtime (smollm2's GGUF, shipped offline in its wheel, as Q8_0): exact
rollback and batch invariance of the sequence, T=0 proposals equal to a one-shot argmax, commits
that leave the KV cache where a fresh context would be, hidden states of the right size and
dtype, refusal of a session that needs what a runtime lacks, the lossless rejection law with q
from llama.cpp's logits, agreement with the fp32 target, and the torch fallback."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch

from edgespec.core.acceptance import get_rule
from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.sampling import make_generator, probs_from_logits, sample
from edgespec.core.types import DraftPlan, SamplingParams, SessionSpec, Verdict
from edgespec.models import draft_runtime, llamacpp
from edgespec.models.draft_runtime import DraftCapabilities, DraftRuntimeOptions, load_draft
from edgespec.models.local_drafter import LocalDrafter
from edgespec.models.presets import load_model
from edgespec.models.prompting import encode_prompt

TEXT = ("The lighthouse keeper climbed the spiral stairs every evening, lit the great lamp and watched "
        "the ships pass safely through the narrow strait. In winter the storms were fierce, but the light "
        "never failed, and the sailors who passed the rocks would raise their caps to the tower.")
DRAWS = 100_000


@pytest.fixture(scope="module")
def draft():
    loaded = load_draft("smollm2", DraftRuntimeOptions(runtime="llamacpp"))
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def prompt(draft) -> list[int]:
    return encode_prompt(draft.tokenizer, "Tell me about lighthouses.")


def _spec(prompt, **fields) -> ResolvedSpec:
    base = dict(prompt_ids=tuple(prompt), params=SamplingParams(), acceptance="exact", max_new_tokens=64)
    return ResolvedSpec.of(SessionSpec(**(base | fields)))


def _one_shot_logits(draft, ids: list[int]) -> torch.Tensor:
    seq = draft.open_sequence(ids[:1], len(ids) + 8, False)
    try:
        return seq.feed(ids).logits
    finally:
        seq.close()


def test_rollback_is_exact_and_feeding_is_batch_invariant(draft, prompt):
    seq = draft.open_sequence(prompt, 256, False)
    seq.prefill()
    base = seq.cache_len
    block = [12, 345, 6789, 42, 1000]
    first = seq.feed(seq.pending() + block).logits
    seq.rollback(base)
    assert seq.cache_len == base
    seq.feed([99, 98, 97])                      # garbage, then rolled back
    seq.rollback(base)
    again = seq.feed(seq.pending() + block).logits
    seq.rollback(base)
    one_by_one = torch.cat([seq.feed([t]).logits for t in seq.pending() + block])
    seq.close()
    assert torch.equal(first, again), "re-feeding after rollback must reproduce the logits exactly"
    assert torch.equal(first, one_by_one), "a block and the same tokens one by one must give the same logits"


async def test_greedy_proposal_equals_one_shot_argmax(draft, prompt):
    drafter = LocalDrafter(draft, _spec(prompt))
    await drafter.prefill()
    proposal = await drafter.propose(DraftPlan(k=10))
    await drafter.close()
    logits = _one_shot_logits(draft, prompt + list(proposal.tokens[:-1]))
    argmax = logits[len(prompt) - 1:].argmax(-1).tolist()
    assert proposal.k == 10
    assert list(proposal.tokens) == argmax
    assert all(e >= 0 for e in proposal.entropies) and len(proposal.entropies) == 10


async def test_commit_leaves_the_cache_where_a_fresh_context_would_be(draft, prompt):
    drafter = LocalDrafter(draft, _spec(prompt))
    await drafter.prefill()
    proposal = await drafter.propose(DraftPlan(k=6))
    correction = (proposal.tokens[2] + 1) % draft.vocab_size      # the target disagreed at position 2
    committed = await drafter.commit(Verdict(round=0, accepted=2, token=correction))
    nxt = await drafter.propose(DraftPlan(k=4))
    await drafter.close()
    prefix = prompt + list(committed.tokens)
    logits = _one_shot_logits(draft, prefix + list(nxt.tokens[:-1]))
    assert committed.tokens == proposal.tokens[:2] + (correction,)
    assert list(nxt.tokens) == logits[len(prefix) - 1:].argmax(-1).tolist()
    assert drafter.seq.ctx is None, "close frees the llama.cpp context"


async def test_hidden_states_have_the_drafts_size_and_fp16_and_match_the_target(draft, prompt):
    spec = _spec(prompt, acceptance="semantic", send_hidden_states=True, draft_hidden_size=draft.hidden_size)
    drafter = LocalDrafter(draft, spec)
    await drafter.prefill()
    proposal = await drafter.propose(DraftPlan(k=4))
    await drafter.close()
    assert proposal.hidden_states.shape == (4, draft.hidden_size) and proposal.hidden_states.dtype == torch.float16
    target = load_model("smollm2", "target")
    ids = torch.tensor([prompt + list(proposal.tokens[:-1])])
    with torch.inference_mode():
        states = target.model(ids, output_hidden_states=True).hidden_states[-1][0, len(prompt) - 1:]
    cosine = torch.nn.functional.cosine_similarity(states, proposal.hidden_states.float(), dim=-1)
    assert target.hidden_size == draft.hidden_size
    assert cosine.min() > 0.99, f"post-norm hidden states differ from the target's: {cosine.tolist()}"


def test_a_session_needing_what_the_runtime_lacks_is_refused_at_open(draft, prompt):
    blind = dataclasses.replace(draft, capabilities=DraftCapabilities(hidden_states=False))
    spec = _spec(prompt, acceptance="semantic", send_hidden_states=True, draft_hidden_size=draft.hidden_size)
    with pytest.raises(ValueError, match="send_hidden_states"):
        LocalDrafter(blind, spec)
    with pytest.raises(ValueError, match="draft_hidden_size"):
        LocalDrafter(draft, _spec(prompt, acceptance="semantic", send_hidden_states=True, draft_hidden_size=64))


def test_rejection_keeps_the_target_law_with_q_from_llamacpp(draft, prompt):
    """q: llama.cpp's logits after the prompt; p: the fp32 target's a few tokens later, so the two
    clearly differ. Both restricted to q's 16 likeliest tokens (a small vocabulary keeps 1e5 draws fast)."""
    target = load_model("smollm2", "target")
    q_full = _one_shot_logits(draft, prompt)[-1]
    with torch.inference_mode():
        p_full = target.model(torch.tensor([prompt + [28, 253]])).logits[0, -1]
    ids = torch.topk(q_full, 16).indices
    q_logits, p_logits = q_full[ids], p_full[ids].float()
    params = SamplingParams(temperature=1.0, seed=3)
    q, p = probs_from_logits(q_logits, params), probs_from_logits(p_logits, params).double()
    rule, draft_gen, target_gen = get_rule("rejection"), make_generator(1, 2), make_generator(1, 1)
    counts = torch.zeros(16, dtype=torch.float64)
    for _ in range(DRAWS):
        x = sample(q, draft_gen)
        outcome = rule.verify([x], [float(q[x])], p_logits.expand(2, -1), params, target_gen)
        first = x if outcome.accepted else (outcome.token if outcome.token is not None
                                             else rule.correct(outcome.residual_p, q, draft_gen))
        counts[first] += 1
    assert 0.5 * (q.double() - p).abs().sum() > 0.2, "draft must differ from target for the test to bite"
    assert 0.5 * (counts / DRAWS - p).abs().sum() < 0.01


def test_top1_agreement_with_the_fp32_target(draft):
    ids = draft.tokenizer.encode(TEXT)
    target = load_model("smollm2", "target")
    with torch.inference_mode():
        p = target.model(torch.tensor([ids])).logits[0].argmax(-1)
    q = _one_shot_logits(draft, ids).argmax(-1)
    agreement = (p == q).float().mean().item()
    assert agreement >= 0.9, f"llama.cpp Q8_0 agrees with the fp32 target on {agreement:.1%} of positions"


def test_missing_llama_cpp_falls_back_to_torch_with_one_warning(monkeypatch, caplog):
    def broken():
        raise ImportError("llama-cpp-python is not usable here (no module named llama_cpp); install it")
    monkeypatch.setattr(llamacpp, "llama_cpp_module", broken)
    with caplog.at_level(logging.WARNING, logger=draft_runtime.__name__):
        loaded = load_draft("smollm2", DraftRuntimeOptions())
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert loaded.runtime == "torch" and loaded.model is not None
    assert len(warnings) == 1 and "drafting with torch" in warnings[0].getMessage()
    with pytest.raises(ImportError, match="llama-cpp-python"):  # asked for explicitly: no silent fallback
        load_draft("smollm2", DraftRuntimeOptions(runtime="llamacpp"))
