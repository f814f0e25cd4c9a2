"""TelemetryOptions: what a service exports besides traces (CLI flags map 1:1). Traces are
configured the standard OpenTelemetry way, by OTEL_* environment variables (`tracing.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from edgespec.telemetry.feed import check_address


@dataclass(frozen=True)
class TelemetryOptions:
    """`metrics_listen`: HOST:PORT of the Prometheus endpoint (None: not served; metrics are still
    kept in memory). `feed_publish`: ZMQ address the orchestrator publishes one event per round
    on (None: off). `feed_hwm`: events queued per subscriber; beyond it ZMQ drops that subscriber's new events."""

    metrics_listen: str | None = None
    feed_publish: str | None = None
    feed_hwm: int = 1000

    def __post_init__(self) -> None:
        if self.metrics_listen is not None:
            host, _, port = self.metrics_listen.rpartition(":")
            if not host or not port.isdigit() or int(port) > 65535:
                raise ValueError(f"metrics_listen: expected HOST:PORT (port 0..65535), got {self.metrics_listen!r}")
        if self.feed_publish is not None:
            try:
                check_address(self.feed_publish, bind=True)
            except ValueError as exc:
                raise ValueError(f"feed_publish: {exc}") from None
        if self.feed_hwm < 1:
            raise ValueError(f"feed_hwm: must be >= 1, got {self.feed_hwm}")
