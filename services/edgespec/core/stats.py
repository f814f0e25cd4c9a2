"""SpecDecodeStats: the per-session statistics record, fed one StepResult per round. Pure data —
sinks (the wire, JSON, logs, metrics) read it; it never writes anywhere itself.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

from edgespec.core.types import MAX_DRAFT_TOKENS, StepResult


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/mean of `values` (zeros when empty)."""
    if not values:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "mean": 0.0}
    if len(values) == 1:
        return {"p50": values[0], "p90": values[0], "p99": values[0], "mean": values[0]}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": q[49], "p90": q[89], "p99": q[98], "mean": statistics.fmean(values)}


@dataclass
class SpecDecodeStats:
    """Counters and per-round timings of one generation; derived metrics as properties."""

    rounds: int = 0                 # speculative rounds (server-only tokens are not rounds)
    server_tokens: int = 0
    mode_switches: int = 0
    predrafted_tokens: int = 0
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    relaxed_accepted: int = 0       # accepted beyond exact match (lossy rules; 0 when lossless)
    generated_tokens: int = 0
    target_forward_passes: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    per_position_accepted: list[int] = field(default_factory=lambda: [0] * MAX_DRAFT_TOKENS)
    draft_ms: list[float] = field(default_factory=list)
    verify_ms: list[float] = field(default_factory=list)
    round_trip_ms: list[float] = field(default_factory=list)
    round_ms: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    ttft_ms: float = 0.0
    total_ms: float = 0.0
    last_server: bool = False
    resumes: int = 0                # sessions reopened after a broken stream (set by the transport)

    def observe(self, step: StepResult) -> None:
        """Account one speculative round, or one token of a server-only run."""
        self.mode_switches += bool(self.generated_tokens) and step.server != self.last_server
        self.last_server = step.server
        if step.tokens and not self.generated_tokens:
            self.ttft_ms = (time.perf_counter() - self.started) * 1e3
        self.generated_tokens += len(step.tokens)
        self.target_forward_passes = step.target_forward_passes
        self.bytes_up += step.bytes_up
        self.bytes_down += step.bytes_down
        self.verify_ms.append(step.verify_ms)
        self.total_ms = (time.perf_counter() - self.started) * 1e3
        if step.server:
            self.server_tokens += len(step.tokens)
            return
        self.rounds += 1
        self.predrafted_tokens += step.predrafted
        self.drafted_tokens += step.drafted
        self.accepted_tokens += step.accepted
        self.relaxed_accepted += step.relaxed_accepted
        for i in range(step.accepted):
            self.per_position_accepted[i] += 1
        self.draft_ms.append(step.draft_ms)
        self.round_trip_ms.append(step.round_trip_ms)
        self.round_ms.append(step.round_ms)

    @property
    def mean_accepted_length(self) -> float:
        """tau: committed tokens per round, bonus/correction included."""
        return (self.accepted_tokens + self.rounds) / self.rounds if self.rounds else 0.0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted_tokens / self.drafted_tokens if self.drafted_tokens else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / (self.total_ms / 1e3) if self.total_ms else 0.0

    def positions(self) -> list[int]:
        """Per-position accepted counts, trimmed to the longest draft position ever accepted."""
        last = max((i for i, n in enumerate(self.per_position_accepted) if n), default=-1)
        return self.per_position_accepted[: last + 1]

    def to_dict(self) -> dict:
        """JSON-ready summary (the same keys the SDK's stats carry)."""
        return {
            "rounds": self.rounds, "drafted_tokens": self.drafted_tokens,
            "accepted_tokens": self.accepted_tokens, "generated_tokens": self.generated_tokens,
            "mean_accepted_length": self.mean_accepted_length, "acceptance_rate": self.acceptance_rate,
            "per_position_accepted": self.positions(), "target_forward_passes": self.target_forward_passes,
            "tokens_per_second": self.tokens_per_second, "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down, "ttft_ms": self.ttft_ms, "total_ms": self.total_ms,
            "server_tokens": self.server_tokens, "mode_switches": self.mode_switches,
            "predrafted_tokens": self.predrafted_tokens, "relaxed_accepted": self.relaxed_accepted,
            "resumes": self.resumes,
            "draft_ms": percentiles(self.draft_ms), "verify_ms": percentiles(self.verify_ms),
            "round_trip_ms": percentiles(self.round_trip_ms),
        }
