"""Acceptance rules: the lossless distribution guarantee of `rejection` (>= 1e5 draws, TV < 0.01)
through the same target-side `verify` and draft-side `correct` the services call, plus the
greedy semantics of `exact`."""

import pytest
import torch

from edgespec.core.acceptance import RULES, get_rule
from edgespec.core.sampling import make_generator, probs_from_logits, sample
from edgespec.core.types import SamplingParams

DRAWS = 100_000


def _committed_first_tokens(p_logits: torch.Tensor, q_logits: torch.Tensor, params: SamplingParams,
                            k: int) -> torch.Tensor:
    """Run draft-propose / target-verify / draft-correct `DRAWS` times; count the first token."""
    rule = get_rule("rejection")
    q = probs_from_logits(q_logits, params)                          # [V]
    target_logits = p_logits.expand(k + 1, -1)                        # same p at every position
    draft_gen, target_gen = make_generator(1, 2), make_generator(1, 1)
    counts = torch.zeros(p_logits.numel(), dtype=torch.float64)
    for _ in range(DRAWS):
        drafts = [sample(q, draft_gen) for _ in range(k)]
        outcome = rule.verify(drafts, [float(q[x]) for x in drafts], target_logits, params, target_gen)
        if outcome.accepted > 0:
            first = drafts[0]
        elif outcome.token is not None:
            first = outcome.token
        else:
            first = rule.correct(outcome.residual_p, q, draft_gen)
        counts[first] += 1
    return counts / DRAWS


@pytest.mark.parametrize("params", [
    SamplingParams(temperature=1.0, seed=1),
    SamplingParams(temperature=0.7, top_k=5, top_p=0.9, seed=2),
], ids=["t1", "t0.7-topk5-topp0.9"])
def test_rejection_sampling_matches_target_distribution(params):
    gen = torch.Generator().manual_seed(7)
    vocab = 12
    p_logits = torch.randn(vocab, generator=gen) * 1.5
    q_logits = torch.randn(vocab, generator=gen) * 1.5     # a deliberately different draft
    freq = _committed_first_tokens(p_logits, q_logits, params, k=1)
    p = probs_from_logits(p_logits, params).double()
    tv = 0.5 * (freq - p).abs().sum().item()
    q = probs_from_logits(q_logits, params).double()
    assert 0.5 * (q - p).abs().sum().item() > 0.2, "draft must differ from target for the test to bite"
    assert tv < 0.01, f"TV(committed, p) = {tv:.4f}"


def test_rejection_defers_correction_with_sparse_p_under_top_k():
    params = SamplingParams(temperature=1.0, top_k=3, seed=0)
    p_logits = torch.tensor([[5.0, 4.0, 3.0, -9.0, -9.0, -9.0, -9.0, -9.0]] * 2)
    # q put all its mass on a token p forbids, so the test must reject at position 0
    outcome = get_rule("rejection").verify([7], [1.0], p_logits, params, make_generator(0, 1))
    assert outcome.accepted == 0 and outcome.token is None
    assert outcome.residual_p.indices is not None and outcome.residual_p.indices.numel() == 3
    assert torch.allclose(outcome.residual_p.dense(), probs_from_logits(p_logits[0], params))


def test_exact_accepts_prefix_and_corrects_with_target_argmax():
    logits = torch.full((4, 10), -5.0)
    for pos, tok in enumerate([3, 4, 9, 1]):
        logits[pos, tok] = 5.0
    greedy = SamplingParams()
    out = RULES["exact"].verify([3, 4, 2], [], logits, greedy, make_generator(0, 1))
    assert (out.accepted, out.token) == (2, 9)
    out = RULES["exact"].verify([3, 4, 9], [], logits, greedy, make_generator(0, 1))
    assert (out.accepted, out.token) == (3, 1)  # bonus
    out = RULES["rejection"].verify([3, 5, 9], [], logits, greedy, make_generator(0, 1))
    assert (out.accepted, out.token) == (1, 4)  # rejection at temperature 0 is exact


def test_exact_refuses_sampling_and_unknown_rule_is_named():
    with pytest.raises(ValueError, match="temperature 0"):
        RULES["exact"].check(SamplingParams(temperature=0.5))
    with pytest.raises(ValueError, match="acceptance: unknown rule 'typo'"):
        get_rule("typo")


@pytest.mark.parametrize("kwargs,field", [
    ({"temperature": -0.1}, "temperature"), ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"), ({"top_k": -1}, "top_k"),
])
def test_sampling_params_validate(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SamplingParams(**kwargs)
