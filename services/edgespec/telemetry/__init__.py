"""Observability around the core: OpenTelemetry traces (per session, round, draft and verify), the
OTLP trace sink and offline trace report, Prometheus metrics, and the ZMQ live round feed.
The core never imports this package; it only calls the RoundObserver protocol it defines.
"""
