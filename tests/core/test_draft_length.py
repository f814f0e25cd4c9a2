"""Draft-length policies on hand-built inputs: SVIP and AdaEDL stop decisions on given entropies,
AdaEDL's threshold following acceptance, HF's heuristic schedule, the cost model and `auto`
(k grows with RTT, shrinks with acceptance, falls back to server-only and probes back), and
per-request state."""

from __future__ import annotations

import math

import pytest

from edgespec.core.draft_length import AdaEdl, Auto, Heuristic, LinkEstimates, PolicyConfig, Svip, make_policy
from edgespec.core.draft_length.estimates import AcceptanceCurve
from edgespec.core.draft_length.cost_model import best_k, expected_tokens
from edgespec.core.draft_length.estimates import LinkSnapshot
from edgespec.core.types import EntropyStop, StepResult


def _step(drafted=4, accepted=2, draft_ms=20.0, verify_ms=60.0, rtt_ms=10.0, bytes_up=80, server=False):
    return StepResult(tokens=(1,) * (accepted + 1), drafted=drafted, accepted=accepted, draft_ms=draft_ms,
                      verify_ms=verify_ms, round_trip_ms=verify_ms + rtt_ms, round_ms=0.0, bytes_up=bytes_up,
                      bytes_down=20, target_forward_passes=0, server=server)


def _block(stop: EntropyStop, entropies: list[float]) -> int:
    for i, h in enumerate(entropies):
        end = stop.block_end(i, h)
        if end is not None:
            return end
    return len(entropies)


def test_svip_stops_after_the_token_that_crosses_0_6_nats_and_keeps_it():
    stop = Svip().plan().stop
    assert stop.max_entropy == pytest.approx(0.6)
    assert _block(stop, [0.1, 0.2, 0.7, 0.1]) == 3
    assert _block(stop, [0.9, 0.1]) == 1
    assert _block(stop, [0.1, 0.59, 0.5]) == 3
    assert Svip(PolicyConfig(k_max=12)).plan().k == 12


def test_adaedl_stops_before_the_token_whose_bound_falls_below_lambda():
    policy = AdaEdl(PolicyConfig(adaedl_lambda=0.5))
    stop = policy.plan().stop
    assert stop.max_entropy == pytest.approx(0.5 ** 2 / 0.2)  # 1 - sqrt(0.2 H) < 0.5  <=>  H > 1.25
    assert _block(stop, [0.3, 1.0, 1.3, 0.1]) == 2            # token 3 is not drafted
    assert _block(stop, [5.0, 0.1]) == 2                      # the first token always is


def test_adaedl_lambda_rises_on_low_acceptance_and_falls_on_high():
    low, high = AdaEdl(), AdaEdl()
    for _ in range(30):
        low.observe(_step(drafted=4, accepted=0))
        high.observe(_step(drafted=4, accepted=4))
    assert low.lam > 0.5 > high.lam
    assert low.plan().stop.max_entropy < AdaEdl().plan().stop.max_entropy < high.plan().stop.max_entropy
    with pytest.raises(ValueError, match="decrease_branch"):
        AdaEdl(params=type(AdaEdl().params)(decrease_branch="c"))


def test_heuristic_is_hf_plus_two_minus_one():
    policy = Heuristic(PolicyConfig(k=4, k_max=9))
    ks = []
    for accepted in (4, 6, 3, 0, 0, 0, 0, 0):
        ks.append(policy.plan().k)
        policy.observe(_step(drafted=ks[-1], accepted=accepted))
    assert ks == [4, 6, 8, 7, 6, 5, 4, 3]
    for _ in range(5):
        policy.observe(_step(drafted=policy.k, accepted=policy.k))
    assert policy.plan().k == 9


def _snapshot(rtt_ms: float, draft_ms=10.0, verify=(40.0, 42, 44, 46, 48, 50, 52, 54, 56)) -> LinkSnapshot:
    return LinkSnapshot(rtt_ms=rtt_ms, ms_per_byte=0.0, draft_ms_per_token=draft_ms, verify_ms=tuple(verify),
                        bytes_up_per_token=8.0, bytes_up_base=40.0)


def test_cost_model_k_grows_with_rtt_and_shrinks_with_acceptance():
    alpha = (0.8,) * 8
    ks = [best_k(_snapshot(rtt), alpha, 8).k for rtt in (0, 25, 100, 400)]
    assert ks == sorted(ks) and ks[-1] > ks[0]
    ks = [best_k(_snapshot(50), (a,) * 8, 8).k for a in (0.95, 0.8, 0.5, 0.2)]
    assert ks == sorted(ks, reverse=True) and ks[0] > ks[-1]
    assert expected_tokens((0.5, 0.5), 2) == pytest.approx(1.75)


def _measured_link(rtt_ms: float, draft_ms: float, verify_ms: float) -> LinkEstimates:
    link = LinkEstimates()
    for k in (1, 2, 3, 4, 5, 6):
        link.observe(_step(drafted=k, accepted=k - 1, draft_ms=draft_ms * k, verify_ms=verify_ms + k, rtt_ms=rtt_ms))
    return link


def _drive(policy: Auto, rounds: int, rtt_ms: float, draft_ms: float = 5.0, accept_all: bool = True) -> None:
    for _ in range(rounds):
        plan = policy.plan()
        if plan.server_tokens:
            policy.observe(_step(drafted=1, accepted=int(accept_all), draft_ms=draft_ms, verify_ms=60.0,
                                 rtt_ms=0.0, server=True))
        else:
            policy.observe(_step(drafted=plan.k, accepted=plan.k if accept_all else 0, draft_ms=draft_ms * plan.k,
                                 verify_ms=60.0 + plan.k, rtt_ms=rtt_ms))


def test_auto_picks_larger_k_when_rtt_grows():
    ks = []
    for rtt in (0.0, 50.0, 200.0):
        policy = Auto(PolicyConfig(k=4, k_max=12, early_stop="none"), _measured_link(rtt, 5.0, 60.0))
        _drive(policy, 40, rtt)
        ks.append(policy.plan().k)
    assert ks == sorted(ks) and ks[-1] > ks[0]


def test_auto_picks_smaller_k_when_acceptance_falls():
    ks = []
    for accepted in (1.0, 0.9, 0.6):
        policy = Auto(PolicyConfig(k=4, k_max=12, early_stop="none"), _measured_link(20.0, 5.0, 60.0))
        policy.curve.alpha = [accepted] * 12
        policy.curve.seen = [True] * 12
        policy.observe(_step(drafted=4, accepted=3, draft_ms=20.0, verify_ms=64.0, rtt_ms=20.0))
        ks.append(policy.last.k)
    assert ks == sorted(ks, reverse=True) and ks[0] > ks[-1]


def test_auto_falls_back_to_server_only_with_hysteresis_and_comes_back():
    link = _measured_link(rtt_ms=150.0, draft_ms=50.0, verify_ms=60.0)
    policy = Auto(PolicyConfig(k=4, k_max=8, early_stop="none"), LinkEstimates())  # fresh: starts speculative
    policy.link = link
    assert policy.plan().server_tokens == 0
    for _ in range(4):  # strikes count from the min_rounds-th round, and it takes two of them
        policy.observe(_step(drafted=4, accepted=0, draft_ms=200.0, verify_ms=64.0, rtt_ms=150.0))
        assert policy.plan().server_tokens == 0
    policy.observe(_step(drafted=4, accepted=0, draft_ms=200.0, verify_ms=64.0, rtt_ms=150.0))
    plan = policy.plan()
    assert plan.k == 0 and plan.server_tokens == 16 and policy.switches == 1
    assert policy.plan().server_tokens == 32  # still losing: longer chunks
    # server tokens whose shadow drafts all match, from a draft that became fast: speculation wins
    policy.observe(_step(drafted=1, accepted=1, draft_ms=2.0, verify_ms=60.0, server=True))
    assert policy.server  # hysteresis: one winning token is not enough
    for _ in range(30):
        policy.observe(_step(drafted=1, accepted=1, draft_ms=2.0, verify_ms=60.0, server=True))
    assert not policy.server and policy.switches == 2
    assert policy.plan().server_tokens == 0


def test_policy_state_is_per_request_and_link_estimates_are_shared():
    link = LinkEstimates()
    first = make_policy("auto", PolicyConfig(k=3), link)
    for _ in range(5):
        first.observe(_step(drafted=3, accepted=0))
    second = make_policy("auto", PolicyConfig(k=3), link)
    assert second.curve.values() != first.curve.values() and second.k == 3
    assert second.link is first.link and link.ready
    a = make_policy("adaedl", PolicyConfig())
    a.observe(_step(drafted=4, accepted=0))
    assert make_policy("adaedl", PolicyConfig()).lam == 0.5 != a.lam
    with pytest.raises(ValueError, match="draft_length"):
        make_policy("nope")
    with pytest.raises(ValueError, match="k_max"):
        PolicyConfig(k_max=40)


def test_proactive_plans_pre_drafting_and_server_policy_never_drafts():
    assert make_policy("fixed", PolicyConfig(k=3, proactive=True)).plan().ahead == 4
    assert make_policy("fixed", PolicyConfig(k=3)).plan().ahead == 0
    plan = make_policy("server").plan()
    assert plan.k == 0 and plan.server_tokens > 0


def test_auto_pre_drafts_by_itself_only_when_the_verdict_wait_exceeds_a_draft_step():
    cheap = Auto(PolicyConfig(k=4, k_max=8, early_stop="none"), _measured_link(20.0, 5.0, 60.0))
    plan = cheap.plan()
    wait = 20.0 + cheap.link.snapshot(8).verify_ms[plan.k]
    assert plan.ahead == min(math.floor(wait / cheap.link.snapshot(8).draft_ms_per_token), 9) > 0
    link = LinkEstimates()
    costly = Auto(PolicyConfig(k=4, k_max=8, early_stop="none", proactive=True), link)  # starts speculative
    link.observe(_step(drafted=1, accepted=1, draft_ms=200.0, verify_ms=60.0, rtt_ms=0.0))
    for k in (2, 3, 4):
        link.observe(_step(drafted=k, accepted=k, draft_ms=200.0 * k, verify_ms=60.0 + k, rtt_ms=0.0))
    assert link.ready and costly.plan().ahead == 0, "a draft step longer than the wait is never pre-drafted"
    fresh = Auto(PolicyConfig(k=3, k_max=8, early_stop="none"), LinkEstimates())
    assert fresh.plan().ahead == 0, "before the link is measured only the request's flag turns it on"


def test_auto_runs_its_entropy_stop_only_while_the_draft_is_weak():
    strong = Auto(PolicyConfig(k=4, k_max=8), _measured_link(20.0, 5.0, 60.0))
    weak = Auto(PolicyConfig(k=4, k_max=8), _measured_link(20.0, 5.0, 60.0))
    for i in range(20):
        strong.observe(_step(drafted=4, accepted=4, draft_ms=4.0, verify_ms=64.0, rtt_ms=0.0))
        weak.observe(_step(drafted=4, accepted=4 * (i % 2), draft_ms=4.0, verify_ms=64.0, rtt_ms=0.0))
    assert strong.curve.values()[0] > 0.9 and strong.plan().stop is None
    assert weak.curve.values()[0] < 0.9 and weak.plan().stop is not None


def test_acceptance_curve_follows_a_strong_draft_within_a_few_rounds():
    curve = AcceptanceCurve(8)  # prior 0.6
    for _ in range(3):
        curve.observe(4, 4)
    assert curve.values()[0] >= 0.9, "three fully accepted rounds outweigh a 0.6 prior"
    for _ in range(50):
        curve.observe(4, 0)
    assert curve.values()[0] < 0.05, "then it is an EWMA that forgets"
