"""The observability configs agree with the code and with each other: every PromQL expression of the
committed Grafana dashboard names only metrics that `ServiceMetrics` exports (and parses with
promtool), every panel uses a provisioned datasource uid, the dashboard provider loads the file that
compose mounts, and Prometheus scrapes exactly the services' `--metrics-listen` ports under their
OTEL_SERVICE_NAMEs. No Grafana, Prometheus server or Docker engine is needed (promtool when present).
Live scraping is tests/telemetry/test_prometheus.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest
import yaml
from edgespec.telemetry.metrics import ServiceMetrics

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
OBSERVABILITY = ROOT / "deploy" / "observability"
DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "edgespec.json"
DATASOURCES = OBSERVABILITY / "grafana-datasources.yml"
PROVIDERS = OBSERVABILITY / "grafana-dashboards.yml"
PROMETHEUS = OBSERVABILITY / "prometheus.yml"
GRAFANA_PROVISIONING = PurePosixPath("/etc/grafana/provisioning")
METRIC = re.compile(r"\bedgespec_\w+")
# Grafana's interval variables, replaced by a literal duration to check an expression outside Grafana.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
# What the dashboard must show (issue 5): metric -> the signal it carries.
REQUIRED = {
    "edgespec_spec_decode_num_accepted_tokens_total": "tau / acceptance",
    "edgespec_spec_decode_num_drafts_total": "tau",
    "edgespec_spec_decode_num_draft_tokens_total": "acceptance rate",
    "edgespec_spec_decode_num_accepted_tokens_per_pos_total": "acceptance per position",
    "edgespec_generated_tokens_total": "tokens/s",
    "edgespec_rtt_seconds_bucket": "RTT quantiles",
    "edgespec_round_seconds_bucket": "round time quantiles",
    "edgespec_verify_seconds_bucket": "verify time quantiles",
    "edgespec_draft_len": "draft length k",
    "edgespec_bytes_up_sum": "bytes up per round",
    "edgespec_bytes_down_sum": "bytes down per round",
    "edgespec_spec_decode_num_relaxed_accepted_tokens_total": "relaxed accepts per rule",
    "edgespec_live_sessions": "live sessions",
    "edgespec_errors_total": "errors by code",
    "edgespec_requests_total": "requests by finish_reason",
}


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _panels(container: dict) -> Iterator[dict]:
    """Every panel, including those nested in collapsed rows."""
    for panel in container.get("panels", []):
        yield panel
        yield from _panels(panel)


def _exprs(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, expr) of every PromQL target."""
    return [(p.get("title", ""), t["expr"]) for p in _panels(dashboard) for t in p.get("targets", []) if "expr" in t]


def unknown_metrics(exprs: list[tuple[str, str]], exported: set[str]) -> dict[str, set[str]]:
    """Panel title -> the `edgespec_*` names its expressions use that are not exported."""
    unknown: dict[str, set[str]] = {}
    for title, expr in exprs:
        if missing := set(METRIC.findall(expr)) - exported:
            unknown.setdefault(title, set()).update(missing)
    return unknown


def _provisioned_datasources() -> dict[str, str]:
    """uid -> type of each datasource in the provisioning file."""
    return {d["uid"]: d["type"] for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}


def _mounts(service: str) -> dict[Path, PurePosixPath]:
    """Host source -> container path of a service's bind mounts."""
    mounts = {}
    for volume in _services()[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts[(ROOT / source).resolve()] = PurePosixPath(target)
    return mounts


def _flag(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


# the dashboard itself -----------------------------------------------------------------------------

def test_dashboard_identity_and_layout():
    dashboard = _dashboard()
    assert (dashboard["uid"], dashboard["title"]) == ("edgespec", "edgespec — speculative decoding")
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert "${DS_" not in DASHBOARD.read_text(), "import-time datasource inputs: provisioning needs fixed uids"
    panels = list(_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids {ids}"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, f"{panel['title']}: {grid}"
        assert panel.get("targets"), f"{panel['title']} queries nothing"


def test_every_expr_names_an_exported_metric():
    exprs = _exprs(_dashboard())
    assert len(exprs) >= len(REQUIRED)
    assert unknown_metrics(exprs, ServiceMetrics().names()) == {}


def test_name_extraction_reports_an_unknown_metric():
    """The check above can fail: a made-up name (or a suffix the type lacks) is reported."""
    exported = ServiceMetrics().names()
    fake = {"panels": [{"title": "row", "panels": [
        {"title": "bad", "targets": [{"expr": "1 + rate(edgespec_nope_total[1m]) / rate(edgespec_draft_len[1m])"}]},
        {"title": "suffix", "targets": [{"expr": "sum(edgespec_draft_len_total) + edgespec_live_sessions"}]},
        {"title": "good", "targets": [{"expr": 'histogram_quantile(0.9, sum by (le) (rate('
                                                'edgespec_rtt_seconds_bucket[$__rate_interval])))'}]}]}]}
    assert unknown_metrics(_exprs(fake), exported) == {"bad": {"edgespec_nope_total"},
                                                       "suffix": {"edgespec_draft_len_total"}}


def test_dashboard_shows_every_required_signal():
    used = {name for _, expr in _exprs(_dashboard()) for name in METRIC.findall(expr)}
    missing = {name: why for name, why in REQUIRED.items() if name not in used}
    assert not missing, f"dashboard lacks {missing}"
    exprs = " ".join(expr for _, expr in _exprs(_dashboard()))
    assert "histogram_quantile(0.5" in exprs and "histogram_quantile(0.9" in exprs
    tau = (r"1 \+ sum\(rate\(edgespec_spec_decode_num_accepted_tokens_total\[[^]]+\]\)\) / "
           r"sum\(rate\(edgespec_spec_decode_num_drafts_total\[[^]]+\]\)\)")
    assert re.search(tau, exprs), "tau = 1 + rate(accepted) / rate(drafts)"
    assert re.search(r"sum by \(code\)|by \(job, code\)", exprs) and "by (finish_reason)" in exprs
    assert "by (rule)" in exprs and "by (position)" in exprs


def test_dashboard_reaches_the_traces():
    dashboard = _dashboard()
    jaeger_uid = next(uid for uid, kind in _provisioned_datasources().items() if kind == "jaeger")
    searches = [t for p in _panels(dashboard) for t in p["targets"]
                if t.get("datasource", {}).get("uid") == jaeger_uid]
    assert any(t.get("queryType") == "search" and t.get("service") == "edgespec-draft" for t in searches)
    assert any(link["url"].startswith("http://localhost:16686") for link in dashboard["links"])
    assert "16686:16686" in _services()["jaeger"]["ports"]


def test_exprs_parse_with_promtool(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install -y prometheus)")
    rules = []
    for i, (_, expr) in enumerate(_exprs(_dashboard())):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"edgespec:dashboard_expr_{i}", "expr": expr})
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_rejects_a_broken_expr(tmp_path):
    """The check above can fail: promtool does reject a malformed expression."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install -y prometheus)")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "bad", "rules": [
        {"record": "edgespec:bad", "expr": "sum(rate(edgespec_generated_tokens_total[1m])"}]}]}))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0


# Grafana provisioning ------------------------------------------------------------------------------

def test_every_panel_uses_a_provisioned_datasource():
    provisioned = _provisioned_datasources()
    for panel in _panels(_dashboard()):
        for source in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
            assert source["uid"] in provisioned, f"{panel['title']}: datasource uid {source['uid']!r} not provisioned"
            assert source["type"] == provisioned[source["uid"]], f"{panel['title']}: {source}"


def test_provisioning_files_are_mounted_where_grafana_reads_them():
    mounts = _mounts("grafana")
    assert mounts[DATASOURCES].parent == GRAFANA_PROVISIONING / "datasources"
    assert mounts[PROVIDERS].parent == GRAFANA_PROVISIONING / "dashboards"


def test_dashboard_provider_path_holds_the_mounted_dashboard():
    mounts = _mounts("grafana")
    assert DASHBOARD in mounts, "compose does not mount the dashboard JSON into grafana"
    providers = yaml.safe_load(PROVIDERS.read_text())["providers"]
    paths = [PurePosixPath(p["options"]["path"]) for p in providers if p["type"] == "file"]
    assert any(mounts[DASHBOARD].is_relative_to(path) for path in paths), \
        f"dashboard mounted at {mounts[DASHBOARD]}, providers load {paths}"
    home = _services()["grafana"].get("environment", {}).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    assert home is None or PurePosixPath(home) == mounts[DASHBOARD]


def test_grafana_rate_interval_matches_the_scrape_interval():
    """$__rate_interval assumes the datasource's timeInterval is Prometheus' scrape interval."""
    prometheus = next(d for d in yaml.safe_load(DATASOURCES.read_text())["datasources"] if d["type"] == "prometheus")
    assert prometheus["jsonData"]["timeInterval"] == yaml.safe_load(PROMETHEUS.read_text())["global"]["scrape_interval"]


# Prometheus scrapes what compose serves ------------------------------------------------------------

def _metrics_endpoints() -> set[tuple[str, str]]:
    """(OTEL_SERVICE_NAME, host:port Prometheus must scrape) of each default-profile metrics server."""
    endpoints = set()
    for name, service in _services().items():
        listen = _flag(service.get("command") or [], "--metrics-listen")
        if listen is None or service.get("profiles"):
            continue
        host, port = listen.rsplit(":", 1)
        assert host == "0.0.0.0", f"{name}: --metrics-listen {listen} is unreachable from prometheus"
        mode = service.get("network_mode", "")
        owner = mode.removeprefix("service:") if mode.startswith("service:") else name
        endpoints.add((service["environment"]["OTEL_SERVICE_NAME"], f"{owner}:{port}"))
    return endpoints


def test_prometheus_scrapes_every_metrics_port_under_its_service_name():
    expected = _metrics_endpoints()
    assert {job for job, _ in expected} == {"edgespec-target", "edgespec-draft"}
    assert ("edgespec-draft", "edge-link:9464") in expected, "the draft's port lives in edge-link's namespace"
    scrapes = {(job["job_name"], target) for job in yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
               for static in job["static_configs"] for target in static["targets"]}
    assert scrapes == expected


def test_metrics_port_is_not_a_grpc_port():
    for name, service in _services().items():
        command = service.get("command") or []
        if (metrics := _flag(command, "--metrics-listen")) is not None:
            assert metrics.rsplit(":", 1)[1] != _flag(command, "--listen").rsplit(":", 1)[1], name


def test_tracing_is_off_by_default_and_documented_for_jaeger():
    services = _services()
    for name, service in services.items():
        env = service.get("environment") or {}
        if "OTEL_SERVICE_NAME" in env:
            assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "${OTEL_EXPORTER_OTLP_ENDPOINT:-}", f"{name}: default off"
            assert env["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"
    assert {s["environment"]["OTEL_SERVICE_NAME"] for s in services.values()
            if "OTEL_SERVICE_NAME" in (s.get("environment") or {})} == {"edgespec-target", "edgespec-draft"}
    assert "4317:4317" in services["jaeger"]["ports"]
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4317 docker compose --profile observability up" in readme
