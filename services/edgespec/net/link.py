"""LinkSpec: the shape of an emulated network link (round-trip time, jitter, rate). A value type
with validation only; `edgespec.net.proxy.DelayProxy` is what applies it to real bytes."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class LinkSpec:
    """An emulated link. Each direction adds `rtt_ms / 2` plus U(0, `jitter_ms`) of delay (order
    kept) and is limited to `rate_mbit` Mbit/s (0 = unlimited)."""

    rtt_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_mbit: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{f.name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{f.name} must be a finite number >= 0, got {value}")

    @property
    def one_way_ms(self) -> float:
        """Propagation delay per direction: half the round trip."""
        return self.rtt_ms / 2

    @property
    def rate_bytes_per_s(self) -> float:
        """The rate in bytes per second; 0 means unlimited."""
        return self.rate_mbit * 1e6 / 8

    @property
    def is_null(self) -> bool:
        """True when the link adds nothing (no delay, no jitter, no rate limit)."""
        return self.rtt_ms == 0 and self.jitter_ms == 0 and self.rate_mbit == 0

    def describe(self) -> str:
        rate = f"{self.rate_mbit:g} Mbit/s" if self.rate_mbit else "unlimited"
        return f"rtt {self.rtt_ms:g} ms, jitter {self.jitter_ms:g} ms, rate {rate}"
