"""Tracing is configured by the standard OTEL_* environment: off unless an exporter is named or an
OTLP endpoint is set; OTEL_SDK_DISABLED wins; unsupported exporters/protocols are named errors."""

from __future__ import annotations

import pytest

from edgespec.telemetry.tracing import TracingConfig, carrier_of, context_from, setup_tracing
from opentelemetry import trace


@pytest.mark.parametrize("env, exporters", [
    ({}, ()),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, ("otlp",)),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317"}, ("otlp",)),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, ()),
    ({"OTEL_TRACES_EXPORTER": "console"}, ("console",)),
    ({"OTEL_TRACES_EXPORTER": "otlp, console"}, ("otlp", "console")),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317"}, ()),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317"}, ()),
])
def test_exporters_from_env(env, exporters):
    assert TracingConfig.from_env("edgespec-target", env).exporters == exporters


@pytest.mark.parametrize("env, field", [
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
     "OTEL_EXPORTER_OTLP_PROTOCOL"),
])
def test_unsupported_settings_name_the_variable(env, field):
    with pytest.raises(ValueError, match=field):
        TracingConfig.from_env("edgespec-target", env)


def test_off_installs_nothing_and_sends_no_context():
    assert setup_tracing("edgespec-target", env={}) is None
    span = trace.get_tracer("t", tracer_provider=trace.NoOpTracerProvider()).start_span("round")
    assert carrier_of(span) == {}  # a no-op span puts nothing on the wire
    assert context_from({}) is None


def test_carrier_round_trip():
    from opentelemetry.sdk.trace import TracerProvider
    span = TracerProvider().get_tracer("t").start_span("round")
    carrier = carrier_of(span)
    assert carrier["traceparent"].split("-")[1] == f"{span.get_span_context().trace_id:032x}"
    parent = trace.get_current_span(context_from(carrier)).get_span_context()
    assert parent.span_id == span.get_span_context().span_id and parent.is_remote
