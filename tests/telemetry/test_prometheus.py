"""Live Prometheus over live services: `edgespec target` and `edgespec draft` (tiny models) run as
subprocesses with `--metrics-listen`, the SDK runs a few generations, and Debian's `prometheus`
scrapes both every second. What PromQL says must equal what the SDK's stats say (tau, counters,
per-position acceptance, requests), both jobs must be up, and every expression of the committed
Grafana dashboard must evaluate. Skipped only when the `prometheus` binary is missing
(`apt-get install -y prometheus`). Not a timing test: every wait is bounded, nothing is timed."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from edgespec_client import Client, GenerationResult

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "observability" / "grafana" / "dashboards" / "edgespec.json"
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
PROMPTS = ("The quick brown fox", "Why is the sky blue?", "Count to ten:")
READY_S, PROMETHEUS_S, STOP_S = 120.0, 60.0, 15.0
TAU = ("1 + sum(edgespec_spec_decode_num_accepted_tokens_total)"
       " / sum(edgespec_spec_decode_num_drafts_total)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (graceful drain), then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_S)


@dataclass
class Processes:
    """Everything started here, so teardown stops it all whatever failed."""

    procs: list[subprocess.Popen]

    def spawn(self, argv: list[str], log: Path) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}  # tracing off
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)


def _serve(processes: Processes, tmp: Path, role: str, metrics_port: int, *extra: str) -> str:
    """Start `edgespec ROLE` on 127.0.0.1:0 and return its bound address (from the ready file)."""
    ready, log = tmp / f"{role}.ready", tmp / f"{role}.log"
    proc = processes.spawn([sys.executable, "-m", "edgespec", role, "--model", "tiny", "--listen", "127.0.0.1:0",
                            "--ready-file", str(ready), "--metrics-listen", f"127.0.0.1:{metrics_port}",
                            "--threads", "1", *extra], log)
    deadline = time.monotonic() + READY_S
    while not ready.exists():
        if proc.poll() is not None:
            pytest.fail(f"edgespec {role} exited with {proc.returncode} before serving:\n{_tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"edgespec {role} did not write {ready} within {READY_S:.0f} s:\n{_tail(log)}")
        time.sleep(0.1)
    return ready.read_text().strip()


def _prometheus_config(target_port: int, draft_port: int) -> dict:
    jobs = {"edgespec-target": target_port, "edgespec-draft": draft_port}
    return {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                               for job, port in jobs.items()]}


class PromQL:
    """The HTTP query API of one Prometheus."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1/query"

    def raw(self, expr: str) -> dict:
        url = f"{self.base}?{urllib.parse.urlencode({'query': expr})}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:  # 400/422 carry the PromQL error as JSON
            return json.loads(e.read())

    def vector(self, expr: str) -> dict[tuple, float]:
        """Instant vector: sorted label items -> value."""
        answer = self.raw(expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
        assert answer["data"]["resultType"] == "vector", f"{expr}: {answer['data']['resultType']}"
        return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in answer["data"]["result"]}

    def value(self, expr: str) -> float:
        result = self.vector(expr)
        assert len(result) == 1, f"{expr}: expected one series, got {result}"
        return next(iter(result.values()))


def _wait_scraped(promql: PromQL, proc: subprocess.Popen, log: Path) -> None:
    """Until both jobs are up and the draft's counters have been ingested (bounded)."""
    deadline = time.monotonic() + PROMETHEUS_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited with {proc.returncode}:\n{_tail(log)}")
        try:
            up = promql.vector('up{job=~"edgespec-.*"} == 1')
            if len(up) == 2 and promql.vector("edgespec_spec_decode_num_drafts_total"):
                return
        except (OSError, AssertionError, ValueError):
            pass  # not listening yet, or no data yet
        time.sleep(0.5)
    pytest.fail(f"prometheus did not scrape both services within {PROMETHEUS_S:.0f} s:\n{_tail(log)}")


@dataclass
class Live:
    promql: PromQL
    results: list[GenerationResult]


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[Live]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Debian's prometheus is not installed (apt-get install -y prometheus)")
    tmp = tmp_path_factory.mktemp("prometheus")
    processes = Processes([])
    try:
        target_metrics, draft_metrics, web = _free_port(), _free_port(), _free_port()
        target = _serve(processes, tmp, "target", target_metrics)
        draft = _serve(processes, tmp, "draft", draft_metrics, "--target", target)
        with Client(draft, timeout=120.0) as client:
            results = [client.generate(prompt, max_new_tokens=24, draft_length="fixed", k=4, temperature=0.0)
                       for prompt in PROMPTS]
        config = tmp / "prometheus.yml"
        config.write_text(yaml.safe_dump(_prometheus_config(target_metrics, draft_metrics)))
        log = tmp / "prometheus.log"
        proc = processes.spawn([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                                f"--web.listen-address=127.0.0.1:{web}"], log)
        promql = PromQL(web)
        _wait_scraped(promql, proc, log)
        yield Live(promql, results)
    finally:
        processes.stop_all()


def _total(results: list[GenerationResult], field: str) -> int:
    return sum(getattr(r.stats, field) for r in results)


def test_both_services_are_up(live):
    up = live.promql.vector('up{job=~"edgespec-.*"}')
    assert {dict(labels)["job"]: value for labels, value in up.items()} == {"edgespec-target": 1.0,
                                                                            "edgespec-draft": 1.0}


def test_tau_from_promql_equals_tau_from_the_sdk(live):
    rounds, accepted = _total(live.results, "rounds"), _total(live.results, "accepted_tokens")
    assert rounds > 0 and accepted > 0, f"nothing to compare: {rounds} rounds, {accepted} accepted"
    assert live.promql.value(TAU) == pytest.approx((accepted + rounds) / rounds, abs=1e-6)
    histogram = "sum(edgespec_accepted_length_sum) / sum(edgespec_accepted_length_count)"
    assert live.promql.value(histogram) == pytest.approx((accepted + rounds) / rounds, abs=1e-6)


@pytest.mark.parametrize("metric, field", [
    ("edgespec_spec_decode_num_drafts_total", "rounds"),
    ("edgespec_spec_decode_num_draft_tokens_total", "drafted_tokens"),
    ("edgespec_spec_decode_num_accepted_tokens_total", "accepted_tokens"),
    ("edgespec_generated_tokens_total", "generated_tokens"),
    ('edgespec_rtt_seconds_count{job="edgespec-draft"}', "rounds"),
    ('edgespec_verify_seconds_count{job="edgespec-target"}', "rounds"),
])
def test_counter_equals_the_sdk_stats(live, metric, field):
    assert live.promql.value(f"sum({metric})") == _total(live.results, field)


def test_acceptance_per_position_matches_the_sdk(live):
    expected: Counter[str] = Counter()
    for result in live.results:
        expected.update({str(i): n for i, n in enumerate(result.stats.per_position_accepted) if n})
    got = live.promql.vector("sum by (position) (edgespec_spec_decode_num_accepted_tokens_per_pos_total)")
    assert {dict(labels)["position"]: value for labels, value in got.items()} == dict(expected)


def test_requests_by_finish_reason_match_the_sdk(live):
    expected = Counter(result.finish_reason for result in live.results)
    got = live.promql.vector("sum by (finish_reason) (edgespec_requests_total)")
    assert {dict(labels)["finish_reason"]: value for labels, value in got.items()} == dict(expected)


def test_every_dashboard_expr_evaluates(live):
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"] if "expr" in t]
    assert exprs
    for expr in exprs:
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        answer = live.promql.raw(expr)
        assert answer["status"] == "success", f"{expr}: {answer.get('error')}"


def test_a_broken_expr_is_reported(live):
    """The check above can fail: the API answers a malformed expression with an error."""
    assert live.promql.raw("sum(rate(edgespec_generated_tokens_total[1m])")["status"] == "error"
