"""One definition of network time: the channel meter of the channel-aware rules, the `auto`
policy's link estimates and telemetry (`StepResult.network_ms`) all take round trip minus the
target's queue and compute; the queue a busy (batching) target adds goes into `auto`'s verify
cost instead, so it plans for t_v under load."""

from __future__ import annotations

import pytest

from edgespec.core.channel import ChannelMeter
from edgespec.core.draft_length import LinkEstimates
from edgespec.core.types import StepResult


def busy_step(queue_ms: float, k: int = 4) -> StepResult:
    return StepResult(tokens=(1, 2), drafted=k, accepted=1, draft_ms=4.0, verify_ms=60.0, queue_ms=queue_ms,
                      round_trip_ms=20.0 + 60.0 + queue_ms, round_ms=110.0 + queue_ms, bytes_up=300,
                      bytes_down=40, target_forward_passes=2)


@pytest.mark.parametrize("queue_ms", [0.0, 150.0])
def test_channel_auto_and_telemetry_agree_on_network_time(queue_ms):
    meter, link = ChannelMeter(weight=1.0), LinkEstimates(weight=1.0)
    for _ in range(3):
        step = busy_step(queue_ms)
        meter.observe(step)
        link.observe(step)
    assert step.network_ms == pytest.approx(20.0)
    assert meter.state().rtt_ms == pytest.approx(20.0)            # the queue is not link latency
    assert link.snapshot(4).rtt_ms == pytest.approx(20.0)


def test_auto_sees_the_verify_time_of_a_loaded_target():
    idle, busy = LinkEstimates(weight=1.0), LinkEstimates(weight=1.0)
    for k in (2, 4, 6, 2, 4, 6):
        idle.observe(busy_step(0.0, k))
        busy.observe(busy_step(200.0, k))
    assert idle.snapshot(6).verify_ms[4] == pytest.approx(60.0)
    assert busy.snapshot(6).verify_ms[4] == pytest.approx(260.0)  # waiting for the batched step counts
