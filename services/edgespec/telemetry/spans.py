"""`span_scope`: a span started with an explicit parent and ended on exit, never attached to
the current context — safe around `yield` in async generators (streams, the loop), where
attaching a context in one step and detaching it in another is an error. Records an exception
as the span's error status; a consumer closing the generator (GeneratorExit) is a normal end.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode


@contextmanager
def span_scope(tracer: trace.Tracer, name: str, parent: Context | None,
               attributes: Mapping[str, object] | None = None,
               kind: trace.SpanKind = trace.SpanKind.INTERNAL) -> Iterator[trace.Span]:
    span = tracer.start_span(name, context=parent, kind=kind, attributes=dict(attributes or {}))
    try:
        yield span
    except GeneratorExit:
        raise
    except BaseException as exc:
        mark_error(span, exc)
        raise
    finally:
        span.end()


def mark_error(span: trace.Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
