"""The rows a trace report is made of: `RoundRow` (one round span with its time split into
`Slice`s), `SessionReport` (a session's rounds and what they add up to) and the part labels, in
the order a round runs. Plain records shared by the analysis (`trace_report`) and its two outputs
(`chrome_trace`, `report_html`); nothing here reads spans or writes files.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

# part -> label, in the order a round runs; "network" only when uplink/downlink are unknown
PART_LABELS = {"draft": "draft compute", "uplink": "uplink", "queue": "queue", "verify": "verify compute",
               "downlink": "downlink", "network": "network (unsplit RTT)"}
MS = 1_000_000  # ns per ms


@dataclass(frozen=True)
class Slice:
    """A placed part of a round's time split; `span_id` when it mirrors a span (the draft span)."""

    part: str
    start_ns: int
    end_ns: int
    span_id: str | None = None


@dataclass(frozen=True)
class RoundRow:
    """One round span: a speculative round, or one server-only run (`server`)."""

    session: str
    index: int
    span_id: str
    trace_id: str
    service: str
    start_ns: int
    end_ns: int
    server: bool
    k: int | None
    accepted: int | None
    tokens: int | None              # committed this round, bonus counted (missing: accepted + 1)
    rtt_ms: float | None
    bytes_up: int | None
    bytes_down: int | None
    split_ms: dict[str, float] = field(compare=False)   # part -> ms, parts known only, PART_LABELS order
    slices: tuple[Slice, ...] = ()  # the parts whose place in time is known
    measured_network: bool = False  # uplink/downlink from events + verify span (else "network" = RTT)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / MS


@dataclass(frozen=True)
class SessionReport:
    """One session's rounds and what they add up to (tau counts the bonus; server-only runs are not rounds)."""

    session: str
    trace_ids: tuple[str, ...]
    services: tuple[str, ...]
    rounds: tuple[RoundRow, ...]    # speculative rounds and server-only runs, by index
    attributes: dict = field(compare=False)  # of the session span ({} when it is missing)

    @property
    def speculative(self) -> tuple[RoundRow, ...]:
        return tuple(r for r in self.rounds if not r.server)

    @property
    def server_runs(self) -> int:
        return sum(r.server for r in self.rounds)

    @property
    def tokens(self) -> int:
        return sum(r.tokens or 0 for r in self.rounds)

    @property
    def tau(self) -> float | None:
        known = [r.tokens for r in self.speculative if r.tokens is not None]
        return statistics.fmean(known) if known else None

    @property
    def mean_rtt_ms(self) -> float | None:
        """Over speculative rounds (a server-only run's net.rtt_ms adds up its streamed tokens)."""
        known = [r.rtt_ms for r in self.speculative if r.rtt_ms is not None]
        return statistics.fmean(known) if known else None

    def position_counts(self) -> list[tuple[int, int]]:
        """(drafted, accepted) per draft position i (0-based) over speculative rounds with k and accepted."""
        rows = [r for r in self.speculative if r.k is not None and r.accepted is not None]
        width = max((r.k for r in rows), default=0)
        return [(sum(r.k > i for r in rows), sum(r.accepted > i for r in rows)) for i in range(width)]

    def acceptance_per_position(self) -> list[float]:
        """Fraction of the rounds that drafted position i whose token at i was accepted."""
        return [accepted / drafted for drafted, accepted in self.position_counts()]
