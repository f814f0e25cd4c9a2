"""ChannelMeter: RTT and uplink bandwidth learned from round measurements alone."""

from __future__ import annotations

import pytest

from edgespec.core.channel import ChannelMeter
from edgespec.core.types import Channel, StepResult


def step(bytes_up: int, round_trip_ms: float, verify_ms: float = 5.0, server: bool = False) -> StepResult:
    return StepResult(tokens=(1,), drafted=4, accepted=2, draft_ms=1.0, verify_ms=verify_ms,
                      round_trip_ms=round_trip_ms, round_ms=round_trip_ms + 1, bytes_up=bytes_up, bytes_down=50,
                      target_forward_passes=2, server=server)


def test_nothing_is_known_before_the_first_round():
    assert ChannelMeter().state() == Channel(rtt_ms=0.0, uplink_bps=0.0)


def test_same_size_blocks_give_the_rtt_and_an_unknown_bandwidth():
    meter = ChannelMeter()
    for _ in range(5):
        meter.observe(step(bytes_up=400, round_trip_ms=45.0, verify_ms=5.0))
    state = meter.state()
    assert state.rtt_ms == pytest.approx(40.0)               # round trip minus target compute
    assert state.uplink_bps == 0.0                           # bytes never varied: cannot tell


def test_varying_block_sizes_recover_rtt_and_uplink_bandwidth():
    rtt_ms, bps = 30.0, 1e6                                  # 1 Mbit/s: 8 us per byte
    meter = ChannelMeter(weight=1.0)
    for size in (200, 1200, 400, 2000, 800, 1600):
        meter.observe(step(bytes_up=size, round_trip_ms=5.0 + rtt_ms + size * 8e3 / bps))
    state = meter.state()
    assert state.uplink_bps == pytest.approx(bps, rel=1e-6)
    assert state.rtt_ms == pytest.approx(rtt_ms, rel=1e-6)


def test_server_only_steps_are_ignored():
    meter = ChannelMeter()
    meter.observe(step(bytes_up=400, round_trip_ms=45.0))
    before = meter.state()
    meter.observe(step(bytes_up=0, round_trip_ms=500.0, server=True))
    assert meter.state() == before
