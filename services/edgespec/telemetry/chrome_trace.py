"""Spans -> Chrome Trace Event JSON (the format Perfetto and chrome://tracing open).

One process per service (pid, with process_name metadata), one thread per session (tid, the same
number in every process and never a pid, with thread_name metadata), one complete event ("X", ts/dur in µs from the
first span) per span with its attributes as args, span events as instant events, a flow arrow where a
span's parent lives in another process (round -> verify), and each round's placed time split as child
slices on the round's own lane. Pure data shaping: it reads Span/RoundRow-like objects from
`round_rows` (built by `trace_report`) and writes no files.
"""

from __future__ import annotations

from edgespec.telemetry.span_file import Span
from edgespec.telemetry.round_rows import PART_LABELS, RoundRow


class _Clock:
    """ns since the epoch -> µs since the first span (floats near 1e15 µs would lose sub-µs digits)."""

    def __init__(self, t0_ns: int):
        self.t0_ns = t0_ns

    def ts(self, ns: int) -> float:
        return (ns - self.t0_ns) / 1000

    @staticmethod
    def dur(start_ns: int, end_ns: int) -> float:
        return (end_ns - start_ns) / 1000


def _lanes(spans: list[Span], sessions: dict[str, str]) -> tuple[dict[str, int], dict[str, int]]:
    ordered = sorted(spans, key=lambda s: s.start_ns)
    pids = {svc: i for i, svc in enumerate(dict.fromkeys(s.service for s in ordered), 1)}
    # tids never equal a pid: Perfetto would call that thread "main thread"
    tids = {lane: i for i, lane in enumerate(dict.fromkeys(sessions[s.span_id] for s in ordered), len(pids) + 1)}
    return pids, tids


def _metadata(spans: list[Span], sessions: dict[str, str], pids: dict, tids: dict) -> list[dict]:
    events = []
    for service, pid in pids.items():
        events += [{"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": service}},
                   {"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0, "args": {"sort_index": pid}}]
    for pid, tid in sorted({(pids[s.service], tids[sessions[s.span_id]]) for s in spans}):
        lane = next(lane for lane, t in tids.items() if t == tid)
        name = lane if lane.startswith("trace ") else f"session {lane}"
        events += [{"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}},
                   {"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid, "args": {"sort_index": tid}}]
    return events


def _span_events(span: Span, pid: int, tid: int, clock: _Clock) -> list[dict]:
    args = {**span.attributes, "span_id": span.span_id, "parent_span_id": span.parent_span_id,
            "trace_id": span.trace_id, "kind": span.kind, "status": span.status}
    events = [{"ph": "X", "name": span.name, "cat": span.service, "pid": pid, "tid": tid,
               "ts": clock.ts(span.start_ns), "dur": clock.dur(span.start_ns, span.end_ns), "args": args}]
    for e in span.events:
        events.append({"ph": "i", "s": "t", "name": e.name, "cat": "event", "pid": pid, "tid": tid,
                       "ts": clock.ts(e.time_ns), "args": dict(e.attributes)})
    return events


def _flows(spans: list[Span], place: dict[str, tuple[int, int]], clock: _Clock) -> list[dict]:
    """An arrow from a parent to each child in another process (the trace context crossing a wire)."""
    by_id = {s.span_id: s for s in spans}
    events = []
    for n, span in enumerate(spans, 1):
        parent = by_id.get(span.parent_span_id)
        if parent is None or place[parent.span_id][0] == place[span.span_id][0]:
            continue
        at = clock.ts(min(max(span.start_ns, parent.start_ns), parent.end_ns))
        (ppid, ptid), (pid, tid) = place[parent.span_id], place[span.span_id]
        events += [{"ph": "s", "id": n, "name": "trace context", "cat": "flow", "pid": ppid, "tid": ptid, "ts": at},
                   {"ph": "f", "bp": "e", "id": n, "name": "trace context", "cat": "flow", "pid": pid, "tid": tid,
                    "ts": clock.ts(span.start_ns)}]
    return events


def _split_events(rounds: list[RoundRow], place: dict[str, tuple[int, int]], clock: _Clock) -> list[dict]:
    """Child slices of each round on the round's lane; a slice mirroring a span already drawn there is skipped."""
    events = []
    for r in rounds:
        pid, tid = place[r.span_id]
        for s in r.slices:
            if s.span_id is not None and place.get(s.span_id) == (pid, tid):
                continue
            events.append({"ph": "X", "name": PART_LABELS[s.part], "cat": "round split", "pid": pid, "tid": tid,
                           "ts": clock.ts(s.start_ns), "dur": clock.dur(s.start_ns, s.end_ns),
                           "args": {"session": r.session, "round": r.index, "part": s.part,
                                    "ms": round((s.end_ns - s.start_ns) / 1e6, 3)}})
    return events


def build(spans: list[Span], sessions: dict[str, str], rounds: list[RoundRow], *, source: str = "") -> dict:
    """The Chrome trace as a JSON-ready dict: {"traceEvents": [...], "displayTimeUnit": "ms", ...}.
    `sessions` maps span_id -> session (span_file.assign_sessions); `rounds` are the analysed rounds."""
    clock = _Clock(min(s.start_ns for s in spans))
    pids, tids = _lanes(spans, sessions)
    place = {s.span_id: (pids[s.service], tids[sessions[s.span_id]]) for s in spans}
    timed = [e for s in spans for e in _span_events(s, *place[s.span_id], clock)]
    timed += _split_events(rounds, place, clock) + _flows(spans, place, clock)
    # parents before their children: by lane, then start, then longest first
    timed.sort(key=lambda e: (e["pid"], e["tid"], e["ts"], -e.get("dur", 0.0)))
    return {"traceEvents": _metadata(spans, sessions, pids, tids) + timed, "displayTimeUnit": "ms",
            "otherData": {"source": source, "t0_unix_ns": clock.t0_ns, "generator": "edgespec trace-report"}}
