"""What the orchestrator tells the target about the link each round (`Channel`: RTT and uplink
bandwidth), measured from the rounds themselves (`ChannelMeter`). Pure arithmetic over StepResults;
no clocks, no sockets.
"""

from __future__ import annotations

from typing import Protocol

from edgespec.core.draft_length.estimates import NetworkMeter
from edgespec.core.types import Channel, StepResult


class ChannelProbe(Protocol):
    """Reports the link before a round and learns from each round."""

    def state(self) -> Channel: ...

    def observe(self, step: StepResult) -> None: ...


class ChannelMeter:
    """The link as `NetworkMeter` measures it (the one definition of network time: round trip
    minus the target's queue and compute, less upload time for the RTT; uplink bandwidth unknown,
    0, until bytes vary)."""

    def __init__(self, weight: float = 0.3) -> None:
        self.network = NetworkMeter(weight)

    def state(self) -> Channel:
        ms_per_byte = self.network.ms_per_byte
        return Channel(rtt_ms=self.network.rtt.value or 0.0,
                       uplink_bps=8e3 / ms_per_byte if ms_per_byte > 0 else 0.0)

    def observe(self, step: StepResult) -> None:
        self.network.observe(step)
