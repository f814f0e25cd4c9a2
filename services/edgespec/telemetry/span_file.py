"""The span JSONL that `edgespec trace-sink` writes: each line parsed and checked into a frozen
`Span` (a ValueError names the file and line), and every span assigned to its session. Reading
only; the analysis and the outputs are `trace_report.py`'s.
"""

from __future__ import annotations

import json
import pathlib
from collections import defaultdict
from dataclasses import dataclass, field

from edgespec.telemetry.span_attrs import SpanAttr

REQUIRED = {"trace_id": str, "span_id": str, "name": str, "start_ns": int, "end_ns": int}
OPTIONAL = {"parent_span_id": (str, type(None)), "kind": str, "service": str, "status": str,
            "attributes": dict, "events": list}


@dataclass(frozen=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Span:
    """One line of the sink's JSONL (see the contract for the fields)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    attributes: dict = field(default_factory=dict, compare=False)
    events: tuple[SpanEvent, ...] = ()
    status: str = "UNSET"

    def event_ns(self, name: str) -> int | None:
        return next((e.time_ns for e in self.events if e.name == name), None)


def _is(value, kind) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _parse(obj, where: str) -> Span:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected one JSON object per line, got {type(obj).__name__}")  # noqa: TRY004
    for key, kind in REQUIRED.items():
        if not _is(obj.get(key), kind):
            raise ValueError(f"{where}: field {key!r} must be {kind.__name__}, got {obj.get(key)!r}")
    for key, kind in OPTIONAL.items():
        if key in obj and not isinstance(obj[key], kind):
            raise ValueError(f"{where}: field {key!r} has the wrong type ({type(obj[key]).__name__})")
    if obj["end_ns"] < obj["start_ns"]:
        raise ValueError(f"{where}: span {obj['name']!r} ends before it starts")
    events = []
    for e in obj.get("events", []):
        if not (isinstance(e, dict) and _is(e.get("name"), str) and _is(e.get("time_ns"), int)):
            raise ValueError(f"{where}: each event needs a str 'name' and an int 'time_ns', got {e!r}")
        events.append(SpanEvent(e["name"], e["time_ns"], dict(e.get("attributes") or {})))
    return Span(obj["trace_id"], obj["span_id"], obj.get("parent_span_id"), obj["name"],
                obj.get("kind", "INTERNAL"), obj.get("service", "unknown_service"), obj["start_ns"],
                obj["end_ns"], dict(obj.get("attributes", {})), tuple(events), obj.get("status", "UNSET"))


def load_spans(path) -> list[Span]:
    """Every span of a JSONL file, once (an exporter's retry may deliver a batch twice).
    Raises FileNotFoundError, or ValueError naming file:line."""
    path = pathlib.Path(path)
    spans: dict[tuple[str, str], Span] = {}
    try:
        with path.open(encoding="utf-8") as lines:
            for lineno, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
                span = _parse(obj, f"{path}:{lineno}")
                spans.setdefault((span.trace_id, span.span_id), span)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text (expected span JSONL from `edgespec trace-sink`)") from None
    if not spans:
        raise ValueError(f"{path}: no spans in the file (expected span JSONL from `edgespec trace-sink`)")
    return list(spans.values())


def assign_sessions(spans: list[Span]) -> dict[str, str]:
    """span_id -> session: its own edgespec.session, else its nearest ancestor's, else (a generate or
    gRPC span above a session) its earliest descendant's, else "trace <first 8 hex of trace id>"."""
    by_id = {s.span_id: s for s in spans}
    own = {s.span_id: str(s.attributes[SpanAttr.SESSION]) for s in spans
           if s.attributes.get(SpanAttr.SESSION) not in (None, "")}  # an empty id names no session
    children = defaultdict(list)
    for s in sorted(spans, key=lambda s: s.start_ns):
        if s.parent_span_id in by_id and s.parent_span_id != s.span_id:
            children[s.parent_span_id].append(s.span_id)

    def up(span_id: str) -> str | None:
        seen = set()
        while span_id in by_id and span_id not in seen:
            if span_id in own:
                return own[span_id]
            seen.add(span_id)
            span_id = by_id[span_id].parent_span_id
        return None

    def down(span_id: str) -> str | None:
        queue, seen = list(children[span_id]), set()
        while queue:
            child = queue.pop(0)
            if child in own:
                return own[child]
            if child not in seen:
                seen.add(child)
                queue.extend(children[child])
        return None

    return {s.span_id: up(s.span_id) or down(s.span_id) or f"trace {s.trace_id[:8]}" for s in spans}
