"""SessionObserver: the core loop's RoundObserver for one generation in the orchestrator. Per
round it opens a `round` span (child of the generation's `session` span) whose W3C context the
loop sends inside the round's messages, updates the Prometheus metrics, and publishes one event
on the live feed. Spans are started and ended explicitly, never made "current": the loop is an
async generator and its rounds span yields.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from opentelemetry import trace

from edgespec.core.stats import SpecDecodeStats
from edgespec.core.types import DraftPlan, StepResult
from edgespec.telemetry.feed import RoundEvent, RoundFeed
from edgespec.telemetry.metrics import ServiceMetrics
from edgespec.telemetry.span_attrs import SpanAttr
from edgespec.telemetry.spans import mark_error
from edgespec.telemetry.tracing import carrier_of


@dataclass
class _Totals:
    """What a round committed, summed over its steps (a server-only run has one per token)."""

    tokens: int = 0
    drafted: int = 0
    accepted: int = 0
    relaxed_accepted: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    draft_ms: float = 0.0
    verify_ms: float = 0.0
    queue_ms: float = 0.0
    round_trip_ms: float = 0.0
    network_ms: float = 0.0
    round_ms: float = 0.0
    server: bool = False

    def add(self, step: StepResult) -> None:
        self.tokens += len(step.tokens)
        self.drafted += step.drafted
        self.accepted += step.accepted
        self.relaxed_accepted += step.relaxed_accepted
        self.bytes_up += step.bytes_up
        self.bytes_down += step.bytes_down
        self.draft_ms += step.draft_ms
        self.verify_ms += step.verify_ms
        self.queue_ms += step.queue_ms
        self.round_trip_ms += step.round_trip_ms
        self.network_ms += step.network_ms
        self.round_ms += step.round_ms
        self.server = step.server


@dataclass
class _RoundScope:
    """One round's span and totals. A speculative round has one step: its span closes as soon as
    that step is recorded, before the loop hands it on (so it does not include the SDK write); a
    server-only run closes when the loop leaves the round."""

    span: trace.Span
    carrier: dict[str, str]
    observer: SessionObserver
    totals: _Totals = field(default_factory=_Totals)
    closed: bool = False

    def mark(self, event: str) -> None:
        self.span.add_event(event)

    def record(self, step: StepResult) -> None:
        self.totals.add(step)
        self.observer.metrics.observe_round(step, self.observer.rule)
        if not step.server:
            self.close()

    def fail(self, exc: BaseException) -> None:
        if not self.closed:
            mark_error(self.span, exc)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.observer.report(self)
            self.span.end()


class SessionObserver:
    """Rounds of one generation -> spans, metrics and feed events."""

    def __init__(self, session_span: trace.Span, tracer: trace.Tracer, metrics: ServiceMetrics,
                 feed: RoundFeed | None, rule: str, lossless: bool, propagate: bool) -> None:
        """`propagate`: send the rounds' trace context along (only when this process traces:
        otherwise a caller's context would ride every round message for nothing)."""
        self.session_span, self.tracer, self.metrics, self.feed = session_span, tracer, metrics, feed
        self.rule, self.lossless, self.propagate = rule, lossless, propagate
        self.session_id = ""
        self.rounds = 0

    def bind(self, session_id: str) -> None:
        """Name the generation by its target session id (shared by the spans of every service)."""
        self.session_id = session_id
        self.session_span.set_attribute(SpanAttr.SESSION, session_id)

    def finish(self, stats: SpecDecodeStats, finish_reason: str, error: BaseException | None) -> None:
        """End the `session` span with the generation's totals. A client that went away ends it as
        "cancelled"; any other exception is the span's error (and is not counted as a request)."""
        self.metrics.resumes.inc(stats.resumes)
        if isinstance(error, (GeneratorExit, asyncio.CancelledError)):
            error, finish_reason = None, "cancelled"
        if error is not None:
            mark_error(self.session_span, error)
            finish_reason = "error"
        else:
            self.metrics.observe_generation(stats, finish_reason)
        self.session_span.set_attributes({
            SpanAttr.GENERATED_TOKENS: stats.generated_tokens, SpanAttr.ROUNDS: stats.rounds,
            SpanAttr.TAU: stats.mean_accepted_length, SpanAttr.FINISH_REASON: finish_reason,
            SpanAttr.SERVER_TOKENS: stats.server_tokens, SpanAttr.RESUMES: stats.resumes})
        self.session_span.end()

    @contextmanager
    def round(self, plan: DraftPlan) -> Iterator[_RoundScope]:
        attributes = {SpanAttr.ROUND: self.rounds, SpanAttr.SESSION: self.session_id,
                      SpanAttr.RULE: self.rule, SpanAttr.LOSSLESS: self.lossless}
        span = self.tracer.start_span("round", context=trace.set_span_in_context(self.session_span),
                                      attributes=attributes)
        scope = _RoundScope(span, carrier_of(span) if self.propagate else {}, self)
        try:
            yield scope
        except GeneratorExit:
            raise  # the consumer stopped reading: the round simply ends
        except BaseException as exc:
            scope.fail(exc)
            raise
        finally:
            scope.close()

    def report(self, scope: _RoundScope) -> None:
        t = scope.totals
        scope.span.set_attributes({
            SpanAttr.K: t.drafted, SpanAttr.ACCEPTED: t.accepted, SpanAttr.TOKENS: t.tokens,
            SpanAttr.BYTES_UP: t.bytes_up, SpanAttr.BYTES_DOWN: t.bytes_down, SpanAttr.NET_RTT_MS: t.network_ms,
            SpanAttr.DRAFT_MS: t.draft_ms, SpanAttr.VERIFY_MS: t.verify_ms, SpanAttr.QUEUE_MS: t.queue_ms,
            SpanAttr.ROUND_TRIP_MS: t.round_trip_ms, SpanAttr.SERVER: t.server,
            SpanAttr.RELAXED_ACCEPTED: t.relaxed_accepted})
        if self.feed is not None and t.tokens:
            event = RoundEvent(session=self.session_id, round=self.rounds, k=t.drafted, accepted=t.accepted,
                               tokens=t.tokens, rtt_ms=t.network_ms, draft_ms=t.draft_ms, verify_ms=t.verify_ms,
                               round_ms=t.round_ms, rule=self.rule, lossless=self.lossless, server=t.server,
                               bytes_up=t.bytes_up, bytes_down=t.bytes_down, time=time.time())
            self.feed.publish(event, scope.carrier)
        self.rounds += 1
