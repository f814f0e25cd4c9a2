"""Codec round trips: proposals (with hidden states and a deferred correction), verdicts with a
bonus token or a sparse/dense residual p, tensors of every dtype, sampling params and stats."""

import pytest
import torch

from edgespec.core.stats import SpecDecodeStats
from edgespec.core.types import DraftPlan, Distribution, Proposal, SamplingParams, StepResult, Verdict
from edgespec.rpc import codec
from edgespec.v1 import orchestrator_pb2


def test_proposal_round_trip_with_hidden_states_and_correction():
    hidden = torch.randn(3, 8).half()
    p = Proposal(round=4, tokens=(5, 6, 7), q_probs=(0.5, 0.25, 1.0), entropies=(0.1, 0.2, 0.3),
                 hidden_states=hidden, correction=9, draft_ms=12.5)
    back = codec.proposal_from_pb(codec.proposal_to_pb(p, "abc"), hidden_size=8)
    assert (back.round, back.tokens, back.q_probs, back.correction) == (4, (5, 6, 7), (0.5, 0.25, 1.0), 9)
    assert torch.equal(back.hidden_states, hidden)
    assert back.entropies == pytest.approx(p.entropies)


@pytest.mark.parametrize("probs", [
    torch.tensor([0.0, 0.7, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0]),       # sparse on the wire
    torch.softmax(torch.randn(8), 0),                                 # dense on the wire
])
def test_verdict_round_trip_with_residual(probs):
    dist = Distribution.compact(probs)
    assert (dist.indices is None) == bool((probs > 0).all())
    v = Verdict(round=1, accepted=2, residual_p=dist, verify_ms=3.0, target_forward_passes=3)
    back = codec.verdict_from_pb(codec.verdict_to_pb(v, rounds=2), vocab_size=8, bytes_up=10, bytes_down=20)
    assert back.token is None and back.accepted == 2 and back.target_forward_passes == 3
    assert torch.equal(back.residual_p.dense(), probs)
    assert (back.bytes_up, back.bytes_down) == (10, 20)


def test_verdict_with_bonus_and_sampling_params():
    v = codec.verdict_from_pb(codec.verdict_to_pb(Verdict(round=0, accepted=3, token=42), rounds=1), 100)
    assert (v.token, v.residual_p) == (42, None)
    params = SamplingParams(temperature=0.5, top_k=7, top_p=0.75, seed=3)
    assert codec.sampling_from_pb(codec.sampling_to_pb(params)) == params
    pb = codec.sampling_to_pb(params)
    pb.ClearField("top_p")
    assert codec.sampling_from_pb(pb).top_p == 1.0  # unset means disabled


def test_stats_encode_every_field():
    stats = SpecDecodeStats()
    stats.observe(StepResult(tokens=(1, 2, 3), drafted=3, accepted=2, draft_ms=5, verify_ms=6, round_trip_ms=7,
                             round_ms=12, bytes_up=40, bytes_down=8, target_forward_passes=2, predrafted=1,
                             relaxed_accepted=1))
    stats.observe(StepResult(tokens=(4,), drafted=0, accepted=0, draft_ms=0, verify_ms=3, round_trip_ms=4,
                             round_ms=4, bytes_up=10, bytes_down=6, target_forward_passes=3, server=True))
    stats.resumes = 1
    expected = stats.to_dict()
    pb = codec.stats_to_pb(stats)
    names = [f.name for f in orchestrator_pb2.GenerationStats.DESCRIPTOR.fields]
    assert set(names) == set(expected)                       # the record and the wire list the same fields
    for name in names:
        value, want = getattr(pb, name), expected[name]
        if isinstance(want, dict):                           # Percentiles
            assert {k: getattr(value, k) for k in want} == pytest.approx(want, rel=1e-6), name
        elif isinstance(want, list):
            assert list(value) == want, name
        else:
            assert value == pytest.approx(want, rel=1e-6), name
        assert want, f"{name} is 0 here: the test would not see it dropped"
    assert (pb.rounds, pb.server_tokens, pb.mode_switches, pb.predrafted_tokens) == (1, 1, 1, 1)


def test_trace_context_and_queue_time_cross_the_wire():
    carrier = {"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"}
    plan = codec.plan_from_pb(codec.plan_to_pb(DraftPlan(k=3, trace_context=carrier)))
    assert plan.trace_context == carrier and plan.k == 3
    p = codec.proposal_from_pb(codec.proposal_to_pb(Proposal(round=1, tokens=(5,), trace_context=carrier), "s"), None)
    assert p.trace_context == carrier
    v = codec.verdict_from_pb(codec.verdict_to_pb(Verdict(round=0, accepted=0, token=1, queue_ms=2.5), rounds=1), 10)
    assert v.queue_ms == 2.5
    assert codec.plan_from_pb(codec.plan_to_pb(DraftPlan(k=1))).trace_context == {}  # tracing off: nothing sent


def test_acceptance_params_are_listed_once_per_form_and_round_trip():
    import dataclasses

    from edgespec.core.acceptance_params import AcceptanceParams
    from edgespec.v1 import common_pb2
    names = [f.name for f in dataclasses.fields(AcceptanceParams)]
    assert names == [f.name for f in common_pb2.AcceptanceParams.DESCRIPTOR.fields]  # the record = the wire
    changed = AcceptanceParams(dropout_paths=9, dropout_p=0.5, dropout_criterion="naive", draft_top_k=7,
                               entropy_threshold=0.25, window=3, semantic_threshold=0.5,
                               semantic_threshold_min=0.25, semantic_ref_ms=20.0, semantic_upload="mismatch-first")
    assert all(getattr(changed, n) != getattr(AcceptanceParams(), n) for n in names)  # every field exercised
    assert codec.acceptance_params_from_pb(codec.acceptance_params_to_pb(changed)) == changed
    assert codec.acceptance_params_from_pb(common_pb2.AcceptanceParams()) == AcceptanceParams()


def test_tensor_errors_name_the_field_in_our_words_not_numpys():
    from edgespec.v1 import common_pb2
    deep = common_pb2.Tensor(dtype=common_pb2.DTYPE_FLOAT16, shape=[1] * 65, data=b"\0\0")
    with pytest.raises(ValueError) as info:
        codec.tensor_from_pb(deep, "hidden_states")
    assert str(info.value) == "hidden_states.shape: at most 8 dimensions, got 65"


def test_a_hidden_upload_for_another_round_is_out_of_order():
    from edgespec.core.types import SessionStateError
    from edgespec.v1 import target_pb2
    with pytest.raises(SessionStateError, match="hidden.round: expected 3, got 4"):
        codec.hidden_rows_from_pb(target_pb2.HiddenUpload(round=4), 3, 1, 64)


def test_verdict_token_outside_the_vocabulary_is_named():
    from edgespec.v1 import common_pb2
    for token in (-1, 320):
        with pytest.raises(ValueError, match=f"token: {token} is outside the vocabulary"):
            codec.verdict_from_pb(common_pb2.Verdict(round=0, accepted=0, token=token), 320)


def test_an_over_long_prompt_is_refused_before_its_ids_become_python_objects():
    """A 16 MiB SessionOpen holds 16M prompt ids; turning them into a tuple before the length
    check cost the target and the Drafter ~130 MB (far more with large ids) per message."""
    import tracemalloc

    from edgespec.v1 import common_pb2
    pb = common_pb2.SessionOpen(prompt_token_ids=[300] * 1_000_000, acceptance="exact", max_new_tokens=8)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="prompt_token_ids: 1000000 tokens exceed the limit of 4096"):
            codec.spec_from_pb(pb, max_prompt_tokens=4096)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak
    assert codec.spec_from_pb(common_pb2.SessionOpen(prompt_token_ids=[3, 4], max_new_tokens=8),
                              max_prompt_tokens=4096).prompt_ids == (3, 4)
