"""What the orchestrator tells the target about the link each round (`Channel`: RTT and uplink
bandwidth), measured from the rounds themselves (`ChannelMeter`) or pinned (`FixedChannel`, for
emulation and tests). Pure arithmetic over StepResults; no clocks, no sockets.
"""

from __future__ import annotations

from typing import Protocol

from edgespec.core.draft_length.estimates import Ewma, LinearFit
from edgespec.core.types import Channel, StepResult


class ChannelProbe(Protocol):
    """Reports the link before a round and learns from each round."""

    def state(self) -> Channel: ...

    def observe(self, step: StepResult) -> None: ...


class ChannelMeter:
    """RTT = EWMA of (round trip - target compute - upload time); uplink bandwidth from a
    least-squares line of network time against bytes up (unknown, 0, until bytes vary)."""

    def __init__(self, weight: float = 0.3) -> None:
        self.rtt = Ewma(weight)
        self.net = LinearFit(prior_slope_ratio=0.0, min_spread=64.0)

    def state(self) -> Channel:
        ms_per_byte = self.net.coefficients()[1]
        return Channel(rtt_ms=self.rtt.value or 0.0, uplink_bps=8e3 / ms_per_byte if ms_per_byte > 0 else 0.0)

    def observe(self, step: StepResult) -> None:
        if step.server:
            return
        net_ms = max(0.0, step.round_trip_ms - step.verify_ms)
        self.net.add(step.bytes_up, net_ms)
        self.rtt.add(max(0.0, net_ms - step.bytes_up * self.net.coefficients()[1]))


class FixedChannel:
    """A pinned link (emulated channels, tests); learns nothing."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def state(self) -> Channel:
        return self.channel

    def observe(self, step: StepResult) -> None:
        """Nothing to learn."""
