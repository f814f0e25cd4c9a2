"""TelemetryOptions: what a service exports besides traces (CLI flags map 1:1). Traces are
configured the standard OpenTelemetry way, by OTEL_* environment variables (`tracing.py`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TelemetryOptions:
    """`metrics_listen`: HOST:PORT of the Prometheus endpoint (None: not served; metrics are still
    kept in memory). `feed_publish`: ZMQ address the orchestrator publishes one event per round
    on (None: off). `feed_hwm`: events buffered per subscriber before new ones are dropped."""

    metrics_listen: str | None = None
    feed_publish: str | None = None
    feed_hwm: int = 1000

    def __post_init__(self) -> None:
        if self.metrics_listen is not None and ":" not in self.metrics_listen:
            raise ValueError(f"metrics_listen: expected HOST:PORT, got {self.metrics_listen!r}")
        if self.feed_hwm < 1:
            raise ValueError(f"feed_hwm: must be >= 1, got {self.feed_hwm}")
