"""`edgespec trace-report` on a synthetic but realistic span file: two sessions, a generate span from
the CLI above one of them, verify spans from the target parented by round spans, a server-only run,
rounds with and without the verify_sent/verdict_received events, a session with no verify spans at
all, missing optional attributes and an unrelated span. Checked: the analysis against numbers worked
out by hand, the Chrome trace's structure (lanes, nesting, the time split inside its round), the
HTML's self-containment, bad input, and (with Debian's `chromium`) that the page renders."""

import argparse
import base64
import io
import json
import re
import shutil
import subprocess

import pytest
from PIL import Image

from edgespec.telemetry.trace_report import (add_trace_report_flags, analyse, assign_sessions, load_spans,
                                             run_trace_report, write_report)

T0 = 1_760_000_000_000_000_000
MS = 1_000_000
TA, TB, TC = "a" * 32, "b" * 32, "c" * 32
CLI, ORCH, TARGET = "edgespec-cli", "edgespec-draft", "edgespec-target"
# session sA: (k, accepted, tokens, net.rtt_ms) per speculative round; round 4 is a server-only run
ROUNDS_A = [(4, 4, 5, 20.8), (4, 2, 3, 21.5), (4, 0, 1, None), (3, 3, 4, 19.0)]


def _span(trace, sid, parent, name, service, start_ms, end_ms, attrs=None, events=(), kind="INTERNAL"):
    return {"trace_id": trace, "span_id": sid, "parent_span_id": parent, "name": name, "kind": kind,
            "service": service, "start_ns": T0 + round(start_ms * MS), "end_ns": T0 + round(end_ms * MS),
            "attributes": attrs or {}, "status": "UNSET",
            "events": [{"name": n, "time_ns": T0 + round(t * MS), "attributes": {}} for n, t in events]}


def _session_a() -> list[dict]:
    spans = [_span(TA, "a000000000000001", None, "generate", CLI, 0, 200, {"edgespec.max_new_tokens": 21},
                   kind="CLIENT"),
             _span(TA, "a000000000000002", "a000000000000001", "/edgespec.v1.Orchestrator/Generate", ORCH,
                   1, 199, kind="SERVER"),
             _span(TA, "a000000000000003", "a000000000000002", "session", ORCH, 2, 198,
                   {"edgespec.session": "sA", "edgespec.rule": "exact", "edgespec.policy": "fixed",
                    "edgespec.generated_tokens": 21, "edgespec.finish_reason": "length"})]
    for i, (k, acc, tokens, rtt) in enumerate(ROUNDS_A):
        r = 5 + 40 * i  # draft [r, r+5], verify_sent r+5.2, verify [r+15, r+25], verdict_received r+36, end r+37
        rid = f"a1000000000000{i:02d}"
        attrs = {"edgespec.round": i, "edgespec.session": "sA", "edgespec.k": k, "edgespec.accepted": acc,
                 "edgespec.tokens": tokens, "edgespec.server": False, "edgespec.draft_ms": 5.0,
                 "edgespec.verify_ms": 7.0, "edgespec.queue_ms": 2.0, "edgespec.bytes_up": 40 + k}
        if rtt is not None:
            attrs["net.rtt_ms"] = rtt
        events = [("verdict_received", r + 36)] if i == 1 else [("verify_sent", r + 5.2), ("verdict_received", r + 36)]
        spans += [_span(TA, rid, "a000000000000003", "round", ORCH, r, r + 37, attrs, events),
                  _span(TA, f"a2000000000000{i:02d}", rid, "draft", ORCH, r, r + 5,
                        {"edgespec.k": k, "edgespec.session": ""}),  # as the draft service sends it
                  _span(TA, f"a3000000000000{i:02d}", rid, "verify", TARGET, r + 15, r + 25,
                        {"edgespec.session": "sA", "edgespec.round": i, "edgespec.k": k, "edgespec.accepted": acc,
                         "edgespec.queue_ms": 2.0, "edgespec.verify_ms": 7.0}, kind="SERVER")]
    spans.append(_span(TA, "a100000000000004", "a000000000000003", "round", ORCH, 165, 197,
                       {"edgespec.round": 4, "edgespec.session": "sA", "edgespec.k": 0, "edgespec.accepted": 0,
                        "edgespec.tokens": 8, "edgespec.server": True, "net.rtt_ms": 18.0,
                        "edgespec.verify_ms": 12.0}, [("verify_sent", 165.5)]))
    spans.append(_span(TA, "a300000000000004", "a100000000000004", "verify", TARGET, 166, 196,  # per-token numbers
                       {"edgespec.session": "sA", "edgespec.round": 4, "edgespec.k": 0, "edgespec.verify_ms": 0.4,
                        "edgespec.queue_ms": 0.1}, kind="SERVER"))
    return spans


def _session_b() -> list[dict]:
    """No verify spans, no events, no generate span; round 1 lacks net.rtt_ms, round 2 edgespec.tokens."""
    spans = [_span(TB, "b000000000000003", None, "session", ORCH, 50, 150, {"edgespec.session": "sB"})]
    for i, (acc, tokens) in enumerate([(1, 2), (2, 3), (0, None)]):
        attrs = {"edgespec.round": i, "edgespec.session": "sB", "edgespec.k": 2, "edgespec.accepted": acc,
                 "edgespec.draft_ms": 3.0, "edgespec.verify_ms": 6.0, "edgespec.queue_ms": 0.5}
        attrs |= {} if tokens is None else {"edgespec.tokens": tokens}
        attrs |= {} if i == 1 else {"net.rtt_ms": 10.0}
        spans.append(_span(TB, f"b1000000000000{i:02d}", "b000000000000003", "round", ORCH,
                           55 + 30 * i, 80 + 30 * i, attrs))
    return spans


@pytest.fixture(scope="module")
def spans_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("spans") / "spans.jsonl"
    stray = _span(TC, "c000000000000001", None, "grpc.health.v1.Health/Check", TARGET, 3, 4, kind="SERVER")
    lines = [json.dumps(s) for s in _session_a() + _session_b() + [stray]]
    # order of lines must not matter, blank lines are skipped, a span delivered twice counts once
    path.write_text("\n".join(lines[::-1] + lines[:3]) + "\n\n")
    return path


@pytest.fixture(scope="module")
def report(spans_file, tmp_path_factory):
    return write_report(spans_file, tmp_path_factory.mktemp("out") / "report")


@pytest.fixture(scope="module")
def sessions(spans_file):
    return {s.session: s for s in analyse(load_spans(spans_file))}


def test_sessions_and_their_numbers(sessions):
    assert list(sessions) == ["sA", "sB"]  # the stray health-check span makes no session
    a, b = sessions["sA"], sessions["sB"]
    assert a.services == (CLI, ORCH, TARGET) and a.trace_ids == (TA,)
    assert len(a.speculative) == 4 and a.server_runs == 1 and a.tokens == 5 + 3 + 1 + 4 + 8
    assert a.tau == pytest.approx((5 + 3 + 1 + 4) / 4)  # server-only runs are not rounds
    assert a.mean_rtt_ms == pytest.approx((20.8 + 21.5 + 19.0) / 3)  # not the server-only run's 18.0
    # drafted/accepted per position; round 3 drafted only 3 tokens
    assert a.position_counts() == [(4, 3), (4, 3), (4, 2), (3, 1)]
    assert a.acceptance_per_position() == pytest.approx([0.75, 0.75, 0.5, 1 / 3])
    assert a.attributes["edgespec.finish_reason"] == "length"
    assert b.services == (ORCH,) and [r.tokens for r in b.rounds] == [2, 3, 1]  # missing tokens = accepted + 1
    assert b.tau == pytest.approx(2.0) and b.mean_rtt_ms == pytest.approx(10.0)
    assert b.acceptance_per_position() == pytest.approx([2 / 3, 1 / 3])


def test_time_split_of_a_round(sessions):
    r0, r1, r2, _, server = sessions["sA"].rounds
    assert r0.measured_network and r0.split_ms == pytest.approx(
        {"draft": 5.0, "uplink": 9.8, "queue": 2.0, "verify": 7.0, "downlink": 11.0})
    assert [s.part for s in r0.slices] == ["draft", "uplink", "queue", "verify", "downlink"]
    # no verify_sent: the target side is placed, the network stays one unsplit part
    assert not r1.measured_network and r1.split_ms["network"] == 21.5 and "uplink" not in r1.split_ms
    assert "network" not in r2.split_ms  # no net.rtt_ms on that round
    # a server-only run: its own totals, nothing placed from its per-token verify span
    assert server.server and server.k == 0 and server.split_ms == {"verify": 12.0, "network": 18.0}
    assert server.slices == () and not server.measured_network
    for r in sessions["sA"].rounds + sessions["sB"].rounds:
        assert sum(r.split_ms.values()) <= r.duration_ms + 1e-9, r
    b0 = sessions["sB"].rounds[0]
    assert b0.slices == () and b0.split_ms == {"draft": 3.0, "queue": 0.5, "verify": 6.0, "network": 10.0}


def test_assign_sessions_climbs_and_descends(spans_file):
    spans = load_spans(spans_file)
    lanes = assign_sessions(spans)
    names = {s.span_id: s.name for s in spans}
    assert lanes["a000000000000001"] == "sA"  # generate: from the session below it
    assert lanes["a200000000000000"] == "sA"  # draft: from its round
    assert lanes["c000000000000001"] == "trace cccccccc" and names["c000000000000001"].startswith("grpc.health")


def _nested(events) -> bool:
    """Complete events on one lane must nest like a call stack (what Perfetto requires)."""
    stack = []
    for e in sorted(events, key=lambda e: (e["ts"], -e["dur"])):
        while stack and stack[-1] <= e["ts"]:
            stack.pop()
        if stack and e["ts"] + e["dur"] > stack[-1] + 1e-6:
            return False
        stack.append(e["ts"] + e["dur"])
    return True


def test_chrome_trace_structure(report):
    trace = json.loads(report.chrome_trace.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert trace["displayTimeUnit"] == "ms"
    events = trace["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    for e in complete:
        assert {"pid", "tid", "ts", "dur", "name"} <= set(e) and e["dur"] >= 0 and e["ts"] >= 0, e
    processes = {e["args"]["name"]: e["pid"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert set(processes) == {CLI, ORCH, TARGET}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    tid_a = {tid for (pid, tid), name in threads.items() if name == "session sA"}
    assert len(tid_a) == 1 and (processes[TARGET], *tid_a) in threads  # one tid per session, in every process
    assert not set(processes.values()) & {tid for _, tid in threads}  # a tid equal to a pid is "main thread"
    span_events = [e for e in complete if e.get("cat") != "round split"]
    assert len(span_events) == (3 + 4 * 3 + 2) + (1 + 3) + 1  # every span once: sA, sB, the stray one
    spans = {e["args"]["span_id"]: e for e in span_events}
    verify = [e for e in complete if e["name"] == "verify"]
    assert {(e["pid"], e["tid"]) for e in verify} == {(processes[TARGET], *tid_a)}
    assert verify[0]["args"]["edgespec.queue_ms"] == 2.0  # attributes become args
    for child in spans.values():
        parent = spans.get(child["args"]["parent_span_id"])
        if parent is not None:
            assert parent["ts"] <= child["ts"] and child["ts"] + child["dur"] <= parent["ts"] + parent["dur"] + 1e-6
    lanes = {}
    for e in complete:
        lanes.setdefault((e["pid"], e["tid"]), []).append(e)
    assert all(_nested(lane) for lane in lanes.values())
    # round -> verify (x5) and generate -> gRPC server span cross a process
    assert sum(e["ph"] == "s" for e in events) == sum(e["ph"] == "f" for e in events) == 5 + 1


def test_time_split_slices_sit_inside_their_round(report):
    events = json.loads(report.chrome_trace.read_text())["traceEvents"]
    rounds = {(e["args"]["edgespec.session"], e["args"]["edgespec.round"]): e for e in events
              if e["ph"] == "X" and e["name"] == "round"}
    split = [e for e in events if e.get("cat") == "round split"]
    # round 0: the draft span is on the same lane already, so four slices; round 1: queue + verify only
    by_round = {}
    for e in split:
        by_round.setdefault((e["args"]["session"], e["args"]["round"]), []).append(e)
    assert [e["name"] for e in sorted(by_round[("sA", 0)], key=lambda e: e["ts"])] == [
        "uplink", "queue", "verify compute", "downlink"]
    assert {e["name"] for e in by_round[("sA", 1)]} == {"queue", "verify compute"}
    assert ("sB", 0) not in by_round and ("sA", 4) not in by_round  # attributes only; a server-only run
    for key, parts in by_round.items():
        r = rounds[key]
        assert all((e["pid"], e["tid"]) == (r["pid"], r["tid"]) for e in parts)
        assert all(r["ts"] <= e["ts"] and e["ts"] + e["dur"] <= r["ts"] + r["dur"] + 1e-6 for e in parts)
        assert sum(e["dur"] for e in parts) <= r["dur"]


def test_html_is_self_contained(report):
    page = report.html.read_text()
    assert not re.search(r"https?://", page) and "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", page)
    table = re.search(r'<table id="sessions">(.*?)</table>', page, re.DOTALL).group(1)
    assert table.count("<tr>") == 3 and "sA" in table and "sB" in table and "3.25" in table
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2
    assert Image.open(io.BytesIO(base64.b64decode(images[0]))).size[0] > 800


def test_sparse_spans_still_report(tmp_path):
    """One round without any optional attribute, and a session span without rounds."""
    path = tmp_path / "sparse.jsonl"
    path.write_text(json.dumps({"trace_id": TA, "span_id": "1", "name": "round", "start_ns": T0, "end_ns": T0 + MS})
                    + "\n" + json.dumps(_span(TB, "2", None, "session", ORCH, 0, 1, {"edgespec.session": "s"})))
    lone, empty = analyse(load_spans(path))
    assert lone.rounds[0].k is None and lone.tau is None and lone.acceptance_per_position() == []
    assert empty.session == "s" and empty.rounds == ()
    paths = write_report(path, tmp_path / "out")
    assert 'id="sessions"' in paths.html.read_text() and json.loads(paths.chrome_trace.read_text())["traceEvents"]


@pytest.mark.parametrize("text, message", [
    ("", "no spans"), ("\n  \n", "no spans"),
    ('{"trace_id": "a", "span_id": "1", "name": "x", "start_ns": 1, "end_ns": 2}\n{not json\n', ":2: not JSON"),
    ('[1, 2]\n', ":1: expected one JSON object"),
    ('{"trace_id": "a", "span_id": "1", "name": "x", "end_ns": 2}\n', ":1: field 'start_ns'"),
    ('{"trace_id": "a", "span_id": "1", "name": "x", "start_ns": 5, "end_ns": 2}\n', ":1: span 'x' ends before"),
    ('{"trace_id": "a", "span_id": "1", "name": "x", "start_ns": 1, "end_ns": 2, "events": [{"name": 3}]}\n',
     ":1: each event"),
])
def test_bad_input_names_file_and_line(tmp_path, text, message):
    path = tmp_path / "spans.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + re.escape(message)):
        load_spans(path)


def test_cli_entry_points(spans_file, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_trace_report_flags(parser)
    assert run_trace_report(parser.parse_args([str(spans_file), "--out", str(tmp_path / "r")])) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "r" / "trace.json") in out and str(tmp_path / "r" / "report.html") in out
    with pytest.raises(FileNotFoundError):
        run_trace_report(parser.parse_args([str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x")]))


CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian `chromium` is not installed "
                                    "(apt-get install chromium; CI installs it)")


def _chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={profile}", *args], check=False, capture_output=True,
                          text=True, timeout=120)


@needs_chromium
def test_report_renders_in_chromium(report, tmp_path):
    shot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", report.html.resolve().as_uri())
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    colours = image.getcolors(maxcolors=1 << 20)
    non_white = sum(n for n, c in colours if c != (255, 255, 255)) / (1280 * 2000)
    assert len(colours) > 200 and non_white > 0.05  # text, tables and the plots, not a blank page


@needs_chromium
def test_report_dom_has_the_session_table(report, tmp_path):
    dom = _chromium(tmp_path, "--dump-dom", report.html.resolve().as_uri()).stdout
    assert '<table id="sessions">' in dom and "session sA" in dom and "session sB" in dom
