"""Telemetry: one process's telemetry runtime — the metrics registry (always kept), its
Prometheus endpoint (`--metrics-listen`), the live round feed (`--feed-publish`), and the tracer.
Servicers receive it and open per-generation observers from it; it owns no decoding logic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from prometheus_client import start_http_server

from edgespec.telemetry.feed import RoundFeed
from edgespec.telemetry.metrics import ServiceMetrics
from edgespec.telemetry.options import TelemetryOptions
from edgespec.telemetry.round_observer import SessionObserver
from edgespec.telemetry.tracing import get_tracer, setup_tracing

log = logging.getLogger(__name__)


@contextmanager
def process_telemetry(service: str, options: TelemetryOptions) -> Iterator[Telemetry]:
    """A serving process's tracing (from the OTEL_* environment, default service name `service`)
    and its Telemetry, made before any model loads (bad flags fail fast) and released on exit
    (batched spans flushed)."""
    tracing = setup_tracing(service)
    try:
        telemetry = Telemetry(options)
        try:
            yield telemetry
        finally:
            telemetry.close()
    finally:
        if tracing is not None:
            tracing.shutdown()


class Telemetry:
    """Metrics, endpoint, feed and tracer of one process; `close()` releases the endpoint and feed."""

    def __init__(self, options: TelemetryOptions | None = None,
                 tracer_provider: trace.TracerProvider | None = None) -> None:
        """`tracer_provider`: trace into this provider instead of the process's global one (the
        telemetry overhead bench runs a traced and an untraced stack side by side)."""
        self.options = options or TelemetryOptions()
        self.metrics = ServiceMetrics()
        self.provider = tracer_provider
        self.tracer = get_tracer(tracer_provider)
        self.http = self.feed = None
        self.metrics_address: str | None = None
        if self.options.metrics_listen:
            host, port = self.options.metrics_listen.rsplit(":", 1)
            try:
                self.http, _ = start_http_server(int(port), addr=host.strip("[]"), registry=self.metrics.registry)
            except OSError as exc:
                raise OSError(f"metrics_listen: cannot serve on {self.options.metrics_listen}: "
                              f"{exc.strerror or exc}") from exc
            self.metrics_address = f"{host}:{self.http.server_port}"
            log.info("metrics on http://%s/metrics", self.metrics_address)
        if self.options.feed_publish:
            try:
                self.feed = RoundFeed(self.options.feed_publish, hwm=self.options.feed_hwm)
            except BaseException:
                self.close()
                raise

    def session(self, parent: Context | None, attributes: Mapping[str, object], rule: str,
                lossless: bool) -> SessionObserver:
        """Start a generation's `session` span under `parent` and an observer of its rounds."""
        span = self.tracer.start_span("session", context=parent, kind=trace.SpanKind.SERVER,
                                      attributes=dict(attributes))
        return SessionObserver(span, self.tracer, self.metrics, self.feed, rule, lossless, self.tracing())

    def tracing(self) -> bool:
        """Whether spans here are real (a TracerProvider is installed), not the API's no-ops."""
        provider = self.provider or trace.get_tracer_provider()
        return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))

    def close(self) -> None:
        """Stop the endpoint and the feed (idempotent)."""
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
            self.http = None
        if self.feed is not None:
            self.feed.close()
            self.feed = None
