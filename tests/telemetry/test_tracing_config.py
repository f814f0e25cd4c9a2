"""Tracing is configured by the standard OTEL_* environment: off unless an exporter is named or an
OTLP endpoint is set; OTEL_SDK_DISABLED wins; unsupported exporters/protocols are named errors."""

from __future__ import annotations

import pytest

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from edgespec.core.types import DraftPlan, StepResult
from edgespec.telemetry.runtime import Telemetry
from edgespec.telemetry.tracing import TracingConfig, carrier_of, context_from, setup_tracing


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
    span = TracerProvider().get_tracer("t").start_span("round")
    carrier = carrier_of(span)
    assert carrier["traceparent"].split("-")[1] == f"{span.get_span_context().trace_id:032x}"
    parent = trace.get_current_span(context_from(carrier)).get_span_context()
    assert parent.span_id == span.get_span_context().span_id and parent.is_remote


def _step(server: bool = False) -> StepResult:
    return StepResult(tokens=(1, 2), drafted=2, accepted=1, draft_ms=1.0, verify_ms=2.0, round_trip_ms=5.0,
                      round_ms=9.0, bytes_up=10, bytes_down=5, target_forward_passes=1, server=server, queue_ms=1.0)


def test_a_process_without_tracing_sends_no_context_even_for_a_traced_caller():
    caller = TracerProvider().get_tracer("sdk").start_span("generate")
    untraced = Telemetry(tracer_provider=trace.NoOpTracerProvider())
    with untraced.session(trace.set_span_in_context(caller), {}, "exact", True).round(DraftPlan(k=2)) as scope:
        assert scope.carrier == {}
    traced = Telemetry(tracer_provider=TracerProvider())
    with traced.session(None, {}, "exact", True).round(DraftPlan(k=2)) as scope:
        assert "traceparent" in scope.carrier


def test_a_speculative_round_span_ends_when_its_step_is_recorded():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = Telemetry(tracer_provider=provider).session(None, {}, "exact", True)
    with observer.round(DraftPlan(k=2)) as scope:
        scope.record(_step())
        ended = [s for s in exporter.get_finished_spans() if s.name == "round"]
        assert len(ended) == 1  # before the loop hands the step on
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "round"]
    assert (span.attributes["edgespec.k"], span.attributes["edgespec.accepted"], span.attributes["net.rtt_ms"]) == (2, 1, 2.0)
    with observer.round(DraftPlan(k=0, server_tokens=2)) as scope:  # a server-only run ends with the round
        scope.record(_step(server=True))
        scope.record(_step(server=True))
        assert len([s for s in exporter.get_finished_spans() if s.name == "round"]) == 1
    server = [s for s in exporter.get_finished_spans() if s.name == "round"][-1]
    assert server.attributes["edgespec.tokens"] == 4 and server.attributes["edgespec.round"] == 1
