"""The lossy acceptance rules on hand-built logits, seeded: FLy (entropy gate, deferred window and
its edges), DropMatch (naive and JS criteria, the collapse fallback, p_drop = 0 == exact) and
semantic (scores, the channel-aware threshold); `relaxed` counts what exact would not accept."""

import pytest
import torch

from edgespec.core.acceptance import RULES, RuleInputs
from edgespec.core.acceptance.dropmatch import js_accepts
from edgespec.core.acceptance.fly import top3_entropy, window_rescue
from edgespec.core.acceptance.semantic_score import FEATURES, SemanticHead, round_cost_ms, threshold
from edgespec.core.acceptance_params import AcceptanceParams
from edgespec.core.sampling import make_generator
from edgespec.core.types import Channel, SamplingParams, TopQ

GREEDY = SamplingParams()
V = 10


def _logits(argmaxes: list[int], sure: list[bool] | None = None) -> torch.Tensor:
    """[len, V] logits with the given argmax per row; `sure` rows are peaked (low top-3
    entropy), the others flat between the argmax and two runners-up (high entropy)."""
    sure = sure or [False] * len(argmaxes)
    rows = torch.full((len(argmaxes), V), -20.0)
    for i, (tok, peaked) in enumerate(zip(argmaxes, sure)):
        rows[i, (tok + 1) % V] = rows[i, (tok + 2) % V] = -8.0 if peaked else 0.0
        rows[i, tok] = 10.0 if peaked else 0.1
    return rows


def _fly(drafts, target, sure=None, **params):
    inputs = RuleInputs(params=AcceptanceParams(**params))
    return RULES["fly"].verify(drafts, [], _logits(target, sure), GREEDY, make_generator(0, 1), inputs)


# --- FLy -------------------------------------------------------------------------------------

def test_fly_entropy_gate_and_top3_entropy_bounds():
    h = top3_entropy(_logits([1, 1], sure=[True, False]))
    assert h[0] < 0.3 < h[1] <= torch.log(torch.tensor(3.0)) + 1e-6
    # mismatch at 0 followed by 2 matches, window 3: rescued when the target is unsure ...
    out = _fly([9, 2, 3, 4], [1, 2, 3, 4, 5], window=3)
    assert (out.accepted, out.token, out.relaxed) == (4, 5, 4)
    # ... a hard reject when it is sure
    out = _fly([9, 2, 3, 4], [1, 2, 3, 4, 5], sure=[True] * 5, window=3)
    assert (out.accepted, out.token, out.relaxed) == (0, 1, 0)


def test_fly_window_edges_follow_the_official_off_by_one():
    k, w = 6, 3
    match = torch.ones(k, dtype=torch.bool)
    match[k - w - 1] = False                       # j = k - W - 1: W-1 matches follow, one spare
    assert window_rescue(match, w)[k - w - 1]
    match = torch.ones(k, dtype=torch.bool)
    match[k - w] = False                           # j = k - W: its window would end at the block end
    assert not window_rescue(match, w).any()
    # rescue at the block end: the last rescuable mismatch, then all accepted plus the bonus
    target = [1, 2, 3, 4, 5, 6, 7]
    out = _fly([1, 2, 9, 4, 5, 6], target, window=3)
    assert (out.accepted, out.token, out.relaxed) == (6, 7, 4)
    out = _fly([1, 2, 3, 9, 5, 6], target, window=3)
    assert (out.accepted, out.token, out.relaxed) == (3, 4, 0)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_fly_with_k_not_above_w_is_exact(k):
    target = list(range(1, k + 2))
    for bad in range(k):
        drafts = [t if i != bad else 0 for i, t in enumerate(target[:k])]
        out = _fly(drafts, target, window=6, entropy_threshold=0.0)
        assert (out.accepted, out.token, out.relaxed) == (bad, target[bad], 0)


def test_fly_rescued_tokens_do_not_count_as_matches_for_other_windows():
    match = torch.tensor([False, False, True, True, True, True])
    assert window_rescue(match, 3).tolist() == [False, True, False, False, False, False]


# --- DropMatch ---------------------------------------------------------------------------------

def _dropmatch(drafts, hidden, lm_head, top_q=None, seed=0, **params):
    logits = hidden @ lm_head.T
    inputs = RuleInputs(params=AcceptanceParams(**params), target_hidden=hidden, lm_head=lm_head, top_q=top_q)
    return RULES["dropmatch"].verify(drafts, [], logits, GREEDY, make_generator(seed, 1), inputs)


def test_dropmatch_naive_accepts_a_token_some_path_prefers_and_rejects_others():
    lm_head = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])     # V = 3, d = 2
    hidden = torch.tensor([[1.0, 0.9], [1.0, 0.9]])                    # argmax 0, token 1 close
    out = _dropmatch([1], hidden, lm_head, dropout_criterion="naive", dropout_paths=8)
    assert (out.accepted, out.token, out.relaxed) == (1, 0, 1)         # a path dropped dim 0
    out = _dropmatch([2], hidden, lm_head, dropout_criterion="naive", dropout_paths=8)
    assert (out.accepted, out.token, out.relaxed) == (0, 0, 0)         # no path ever picks 2


def test_dropmatch_with_p_drop_zero_is_exact():
    gen = torch.Generator().manual_seed(3)
    lm_head = torch.randn(50, 16, generator=gen)
    for trial in range(40):
        hidden = torch.randn(5, 16, generator=gen)
        drafts = torch.randint(0, 50, (4,), generator=gen).tolist()
        drafts[: trial % 4] = (hidden @ lm_head.T).argmax(-1)[: trial % 4].tolist()
        exact = RULES["exact"].verify(drafts, [], hidden @ lm_head.T, GREEDY, make_generator(0, 1))
        top = torch.softmax(torch.randn(4, 50, generator=gen), -1).topk(8)
        for criterion in ("naive", "js"):
            out = _dropmatch(drafts, hidden, lm_head, TopQ(top.indices, top.values), dropout_p=0.0,
                             dropout_criterion=criterion, seed=trial)
            assert (out.accepted, out.token, out.relaxed) == (exact.accepted, exact.token, 0)


def test_js_criterion_and_its_collapse_fallback():
    drafts = torch.tensor([2])
    far_q = TopQ(torch.tensor([[7]]), torch.tensor([[1.0]]))           # q is one-hot on token 7
    collapsed = torch.zeros(5, 1, 10)
    collapsed[:, 0, 2] = 4.0                                            # all paths agree on 2
    assert js_accepts(collapsed, drafts, far_q).tolist() == [True]       # Eq. 6 fails, Eq. 7 rescues
    assert js_accepts(collapsed, torch.tensor([3]), far_q).tolist() == [False]
    spread = torch.randn(5, 1, 10, generator=torch.Generator().manual_seed(0))
    centroid = torch.softmax(spread.mean(0), -1)[0]
    near_q = TopQ(torch.arange(10).reshape(1, 10), centroid.reshape(1, 10))
    minority = int(torch.softmax(spread, -1)[:, 0].mean(0).argmin())
    assert js_accepts(spread, torch.tensor([minority]), near_q).tolist() == [True]   # Eq. 6 holds
    assert js_accepts(spread, torch.tensor([minority]), far_q).tolist() == [False]


def test_dropmatch_is_seeded():
    lm_head = torch.randn(30, 8, generator=torch.Generator().manual_seed(1))
    hidden = torch.randn(4, 8, generator=torch.Generator().manual_seed(2))
    outs = {_dropmatch([5, 6, 7], hidden, lm_head, dropout_criterion="naive", dropout_p=0.5, seed=s)
            for s in (4, 4)}
    assert len(outs) == 1


# --- semantic ----------------------------------------------------------------------------------

def _semantic_inputs(channel: Channel, **params) -> tuple[torch.Tensor, RuleInputs]:
    lm_head = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]])   # tokens 0, 1 close
    target_hidden = torch.tensor([[1.0, 0.1, 0.0], [0.0, 0.0, 1.0]])
    draft_hidden = torch.tensor([[1.0, 0.3, 0.0]])
    inputs = RuleInputs(params=AcceptanceParams(**params), target_hidden=target_hidden, lm_head=lm_head,
                        draft_hidden=draft_hidden, channel=channel)
    return target_hidden @ lm_head.T, inputs


def test_semantic_threshold_falls_monotonically_with_rtt():
    params = AcceptanceParams(semantic_threshold=0.9, semantic_threshold_min=0.5, semantic_ref_ms=50)
    values = [threshold(params, round_cost_ms(Channel(rtt_ms=rtt), 0)) for rtt in (0, 5, 20, 50, 200, 1e4)]
    assert values[0] == pytest.approx(0.9) and values[3] == pytest.approx(0.7)
    assert all(a > b for a, b in zip(values, values[1:])) and values[-1] >= 0.5
    slow_uplink = round_cost_ms(Channel(rtt_ms=10, uplink_bps=1e6), upload_bytes=10_000)
    assert slow_uplink == pytest.approx(90.0)                           # 10 ms + 80 kbit at 1 Mbit/s


def test_semantic_accepts_a_close_mismatch_only_on_a_costly_channel():
    rule = RULES["semantic"]
    params = dict(semantic_threshold=0.95, semantic_threshold_min=0.5)
    for rtt, accepted in ((0.0, 0), (500.0, 1)):
        logits, inputs = _semantic_inputs(Channel(rtt_ms=rtt), **params)
        out = rule.verify([1], [], logits, GREEDY, make_generator(0, 1), inputs)
        assert (out.accepted, out.relaxed) == (accepted, accepted)
        assert out.token == (0 if not accepted else int(logits[1].argmax()))
    logits, inputs = _semantic_inputs(Channel(rtt_ms=500.0), **params)
    assert rule.verify([2], [], logits, GREEDY, make_generator(0, 1), inputs).accepted == 0  # far token


def test_semantic_head_replaces_the_training_free_score():
    logits, inputs = _semantic_inputs(Channel(), semantic_threshold=0.5, semantic_threshold_min=0.5)
    never = SemanticHead(weights=torch.zeros(len(FEATURES)), bias=-10.0)
    always = SemanticHead(weights=torch.zeros(len(FEATURES)), bias=10.0)
    rule = RULES["semantic"]
    for head, accepted in ((never, 0), (always, 1)):
        out = rule.verify([2], [], logits, GREEDY, make_generator(0, 1), RuleInputs(**{**inputs.__dict__, "head": head}))
        assert out.accepted == accepted


@pytest.mark.parametrize("field,value", [("dropout_p", 1.0), ("window", 0), ("draft_top_k", 0),
                                         ("entropy_threshold", -1.0), ("semantic_ref_ms", 0.0),
                                         ("dropout_criterion", "vote"), ("semantic_upload", "x")])
def test_acceptance_params_name_the_bad_field(field, value):
    with pytest.raises(ValueError, match=f"acceptance_params.{field}"):
        AcceptanceParams(**{field: value})


def test_lossy_rules_are_labelled():
    assert {name for name, rule in RULES.items() if not rule.lossless} == {"fly", "dropmatch", "semantic"}
