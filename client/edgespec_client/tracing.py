"""Optional tracing of SDK calls. When the OpenTelemetry API is importable, every generation is
a `generate` CLIENT span (a child of whatever span is current where it was called) and its W3C
trace context rides in the call metadata, so the orchestrator's `session` span joins the
caller's trace. Without the API, or with no tracer provider configured, it costs nothing and
sends nothing. The SDK itself never configures exporters: the application does.
"""

from __future__ import annotations

from typing import Any

try:
    from opentelemetry import propagate, trace
except ImportError:  # the SDK needs only grpc and the stubs
    trace = None


class GenerateTrace:
    """The `generate` span of one call: started now, ended by `end()` (idempotent)."""

    def __init__(self, request: Any) -> None:
        self.span = None
        self.metadata: tuple[tuple[str, str], ...] = ()
        if trace is None:
            return
        span = trace.get_tracer("edgespec_client").start_span("generate", kind=trace.SpanKind.CLIENT, attributes={
            "edgespec.max_new_tokens": request.max_new_tokens, "edgespec.acceptance": request.acceptance,
            "edgespec.draft_length": request.draft_length})
        if not span.get_span_context().is_valid:
            return
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        self.span, self.metadata = span, tuple(carrier.items())

    def finished(self, result: Any) -> None:
        if self.span is not None:
            stats = result.stats
            self.span.set_attributes({"edgespec.generated_tokens": len(result.token_ids),
                                      "edgespec.finish_reason": result.finish_reason,
                                      "edgespec.tau": stats.mean_accepted_length, "edgespec.rounds": stats.rounds})

    def failed(self, error: BaseException) -> None:
        if self.span is not None:
            self.span.record_exception(error)
            self.span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))

    def end(self) -> None:
        if self.span is not None:
            self.span.end()
            self.span = None
