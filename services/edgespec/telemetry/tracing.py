"""OpenTelemetry set-up from the standard OTEL_* environment (OTEL_SERVICE_NAME,
OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER, OTEL_TRACES_SAMPLER, OTEL_RESOURCE_ATTRIBUTES,
OTEL_SDK_DISABLED ...), plus the W3C inject/extract helpers the spans share. Not the spans
themselves (`round_observer.py`, the servicers).

Tracing is on when an exporter is configured: OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set, or
OTEL_TRACES_EXPORTER names one. Otherwise nothing is installed and every span is the API's
no-op span (the cost `edgespec bench --telemetry` reports as "off").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

TRACER_NAME = "edgespec"


def _otlp() -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter()  # endpoint, headers, timeout, compression: OTEL_EXPORTER_OTLP_*


EXPORTERS: dict[str, Callable[[], SpanExporter]] = {"otlp": _otlp, "console": ConsoleSpanExporter}


@dataclass(frozen=True)
class TracingConfig:
    """Which exporters run (empty: tracing off) and the default service name."""

    exporters: tuple[str, ...]
    service_name: str

    @classmethod
    def from_env(cls, default_service: str, env: Mapping[str, str] | None = None) -> TracingConfig:
        env = os.environ if env is None else env
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return cls((), default_service)
        names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
        if not names and (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
            names = ["otlp"]
        names = [n for n in names if n != "none"]
        unknown = [n for n in names if n not in EXPORTERS]
        if unknown:
            raise ValueError(f"OTEL_TRACES_EXPORTER: unsupported {', '.join(unknown)}; known: {', '.join(EXPORTERS)}")
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
        if "otlp" in names and protocol != "grpc":
            raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL: only grpc is supported, got {protocol!r}")
        return cls(tuple(names), default_service)


def setup_tracing(default_service: str, env: Mapping[str, str] | None = None,
                  instrument_grpc: bool = True) -> TracerProvider | None:
    """Install a TracerProvider when the environment configures an exporter (else None: off).
    OTEL_SERVICE_NAME, when set, names the service; the sampler comes from OTEL_TRACES_SAMPLER.
    With `instrument_grpc`, gRPC servers and channels created afterwards get one span per RPC."""
    env = os.environ if env is None else env
    config = TracingConfig.from_env(default_service, env)
    if not config.exporters:
        return None
    named = env.get("OTEL_SERVICE_NAME") or f"{SERVICE_NAME}=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    resource = Resource.create({} if named else {SERVICE_NAME: config.service_name})
    provider = TracerProvider(resource=resource)
    for name in config.exporters:
        provider.add_span_processor(BatchSpanProcessor(EXPORTERS[name]()))
    trace.set_tracer_provider(provider)
    if instrument_grpc:
        from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer
        GrpcAioInstrumentorServer().instrument()
        GrpcAioInstrumentorClient().instrument()
    return provider


def get_tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    """The edgespec tracer of `provider`, or of the global provider (a proxy until one is
    installed, then the real one)."""
    return trace.get_tracer(TRACER_NAME, tracer_provider=provider)


def carrier_of(span: trace.Span) -> dict[str, str]:
    """`span`'s W3C trace context as a plain dict (empty for a no-op span)."""
    carrier: dict[str, str] = {}
    if span.get_span_context().is_valid:
        propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def context_from(carrier: Mapping[str, str]) -> Context | None:
    """The parent context a received message carries (None when it carries none)."""
    return propagate.extract(dict(carrier)) if carrier else None
