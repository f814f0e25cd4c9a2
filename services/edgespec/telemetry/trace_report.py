"""`edgespec trace-report`: read the span JSONL that `edgespec trace-sink` writes, rebuild every
session's rounds (time split, k, accepted, tokens, RTT) and write a Chrome trace plus a static HTML
report. It reads one file and writes two; it is not a collector, speaks no OTLP, and never splits a
number the spans do not split (an unsplit round trip is reported as "network", never halved).

Time split of a round (contract; both hosts on one clock): draft compute = the draft span;
uplink = verify.start - event verify_sent; queue = edgespec.queue_ms at the start of the verify span;
verify compute = edgespec.verify_ms; downlink = event verdict_received - verify.end. Without the verify
span or the events, the round's attributes fill in and net.rtt_ms stays one "network" part.
"""

from __future__ import annotations

import argparse
import json
import pathlib
from collections import defaultdict
from dataclasses import dataclass

from edgespec.telemetry import chrome_trace, report_html
from edgespec.telemetry.round_rows import MS, PART_LABELS, RoundRow, SessionReport, Slice
from edgespec.telemetry.span_attrs import SpanAttr
from edgespec.telemetry.span_file import Span, assign_sessions, load_spans

def _num(attrs: dict, key: str, kind=float):
    value = attrs.get(key)
    return kind(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _split(rnd: Span, draft: Span | None, verify: Span | None, attrs: dict) -> tuple[dict, tuple[Slice, ...], bool]:
    queue_ms, verify_ms = _num(attrs, SpanAttr.QUEUE_MS), _num(attrs, SpanAttr.VERIFY_MS)
    placed = [Slice("draft", draft.start_ns, draft.end_ns, draft.span_id)] if draft else []
    sent, received = rnd.event_ns("verify_sent"), rnd.event_ns("verdict_received")
    measured = bool(verify and sent is not None and received is not None
                    and sent <= verify.start_ns and received >= verify.end_ns)
    if measured:
        placed.append(Slice("uplink", sent, verify.start_ns))
    if verify:
        compute_start = min(verify.start_ns + round((queue_ms or 0.0) * MS), verify.end_ns)
        compute_end = verify.end_ns if verify_ms is None else min(compute_start + round(verify_ms * MS),
                                                                  verify.end_ns)
        placed += [Slice("queue", verify.start_ns, compute_start), Slice("verify", compute_start, compute_end)]
    if measured:
        placed.append(Slice("downlink", verify.end_ns, received))
    clipped = [Slice(s.part, max(s.start_ns, rnd.start_ns), min(s.end_ns, rnd.end_ns), s.span_id) for s in placed]
    slices = tuple(s for s in clipped if s.end_ns > s.start_ns)
    known = {s.part: (s.end_ns - s.start_ns) / MS for s in slices}
    fallback = {"draft": _num(attrs, SpanAttr.DRAFT_MS), "queue": queue_ms, "verify": verify_ms,
                "network": None if measured else _num(attrs, SpanAttr.NET_RTT_MS)}
    split = {part: v for part in PART_LABELS if (v := known.get(part, fallback.get(part))) is not None}
    return split, slices, measured


def _round_row(rnd: Span, session: str, index: int, children: dict[str, list[Span]]) -> RoundRow:
    a = rnd.attributes
    server = a.get(SpanAttr.SERVER) is True
    # one draft and one verify child place a speculative round's split; a server-only run streams
    # n tokens (n shadow drafts, per-token numbers on its verify span): only its own totals count
    draft, verify = (None, None) if server else (
        children[name][0] if len(children.get(name, ())) == 1 else None for name in ("draft", "verify"))
    merged = a if server else {**(verify.attributes if verify else {}), **a}  # the round's own numbers win
    k, accepted = _num(merged, SpanAttr.K, int), _num(merged, SpanAttr.ACCEPTED, int)
    tokens = _num(a, SpanAttr.TOKENS, int)
    if tokens is None and accepted is not None and not server:
        tokens = accepted + 1
    split, slices, measured = _split(rnd, draft, verify, merged)
    return RoundRow(session, index, rnd.span_id, rnd.trace_id, rnd.service, rnd.start_ns, rnd.end_ns, server,
                    k, accepted, tokens, _num(a, SpanAttr.NET_RTT_MS), _num(a, SpanAttr.BYTES_UP, int),
                    _num(a, SpanAttr.BYTES_DOWN, int), split, slices, measured)


def analyse(spans: list[Span], lanes: dict[str, str] | None = None) -> list[SessionReport]:
    """One SessionReport per session (a session span or round spans), in order of first appearance."""
    lanes = lanes if lanes is not None else assign_sessions(spans)
    ordered = sorted(spans, key=lambda s: s.start_ns)
    children: dict[str, dict[str, list[Span]]] = defaultdict(lambda: defaultdict(list))
    by_session: dict[str, list[Span]] = defaultdict(list)
    for s in ordered:
        if s.parent_span_id:
            children[s.parent_span_id][s.name].append(s)
        by_session[lanes[s.span_id]].append(s)
    reports = []
    for session, members in by_session.items():
        rounds = [s for s in members if s.name == "round"]
        if not rounds and not any(s.name == "session" for s in members):
            continue
        numbers = [_num(r.attributes, SpanAttr.ROUND, int) for r in rounds]
        # edgespec.round when every round has it, else the order the rounds started in
        indices = numbers if None not in numbers else list(range(len(rounds)))
        rows = sorted((_round_row(r, session, i, children[r.span_id]) for r, i in zip(rounds, indices)),
                      key=lambda row: (row.index, row.start_ns))
        head = next((s.attributes for s in members if s.name == "session"), {})
        reports.append(SessionReport(session, tuple(dict.fromkeys(s.trace_id for s in members)),
                                     tuple(dict.fromkeys(s.service for s in members)), tuple(rows), dict(head)))
    return reports


@dataclass(frozen=True)
class ReportPaths:
    chrome_trace: pathlib.Path
    html: pathlib.Path


def write_report(spans_path, out_dir) -> ReportPaths:
    """Write DIR/trace.json (Chrome Trace Event format) and DIR/report.html (self-contained)."""
    spans = load_spans(spans_path)
    lanes = assign_sessions(spans)
    sessions = analyse(spans, lanes)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(out / "trace.json", out / "report.html")
    trace = chrome_trace.build(spans, lanes, [r for s in sessions for r in s.rounds], source=str(spans_path))
    paths.chrome_trace.write_text(json.dumps(trace), encoding="utf-8")
    paths.html.write_text(report_html.render(sessions, source=str(spans_path), span_count=len(spans)),
                          encoding="utf-8")
    return paths


def add_trace_report_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("spans", type=pathlib.Path, help="span JSONL written by `edgespec trace-sink`")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("trace-report"),
                   help="output folder for trace.json and report.html (created if missing)")


def run_trace_report(args: argparse.Namespace) -> int:
    paths = write_report(args.spans, args.out)
    print(f"chrome trace: {paths.chrome_trace}  (open in Perfetto or chrome://tracing)")
    print(f"html report:  {paths.html}")
    return 0
