"""RoundObserver: the hook through which the loop reports each round to telemetry (traces,
metrics, the live feed) without importing any of it. Pure protocol plus a no-op default; the
OpenTelemetry/Prometheus/ZMQ implementation lives in `edgespec.telemetry`.

A round's scope hands the loop a `carrier` (the W3C trace context of the round, a plain
str -> str mapping) that travels inside the round's messages, so spans on the draft and target
hosts join the round's trace.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from edgespec.core.types import DraftPlan, StepResult


class RoundScope(Protocol):
    """One round as telemetry sees it."""

    carrier: Mapping[str, str]

    def mark(self, event: str) -> None:
        """A timestamped event inside the round ("verify_sent", "verdict_received")."""

    def record(self, step: StepResult) -> None:
        """What the round committed (called once, or once per token of a server-only run)."""


class RoundObserver(Protocol):
    """Opens a scope per round; the scope closes (and reports) when the round ends or fails."""

    def round(self, plan: DraftPlan) -> AbstractContextManager[RoundScope]: ...


class _NullScope:
    carrier: Mapping[str, str] = {}

    def mark(self, event: str) -> None:
        pass

    def record(self, step: StepResult) -> None:
        pass


class NullObserver:
    """Observes nothing (in-process use, tests, telemetry off)."""

    @contextmanager
    def round(self, plan: DraftPlan) -> Iterator[RoundScope]:
        yield _NullScope()
