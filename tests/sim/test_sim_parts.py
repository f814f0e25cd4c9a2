"""The parts of `edgespec sim` that need no root: flags -> configs, the shaping commands each
mechanism issues (with `sh` recorded, not run), the link probe on loopback through a DelayProxy,
the one-line error without root or iproute2, the sweep's policy grid and its report rendering."""

from __future__ import annotations

import asyncio
import json

import pytest

from edgespec import cli
from edgespec.net.link import LinkSpec
from edgespec.sim import netns, probe, shaping, sweep_report
from edgespec.sim.config import LinkShape, SweepConfig
from edgespec.sim.sweep import grid_policies


def _parse(*argv: str):
    return cli.build_parser().parse_args(["sim", *argv])


def test_flags_map_to_the_single_run_config():
    from edgespec.sim.cli import sim_config
    cfg = sim_config(_parse("--rtt", "50", "--jitter", "5", "--loss", "1", "--rate", "20", "--policy", "fixed",
                            "--k", "3", "--model", "tiny", "--max-new-tokens", "16"))
    assert cfg.link == LinkShape(rtt_ms=50, jitter_ms=5, loss_pct=1, rate_mbit=20)
    assert cfg.request_options()["draft_length"] == "fixed" and cfg.request_options()["k"] == 3
    assert cfg.workload.model == "tiny" and cfg.workload.max_new_tokens == 16


def test_sweep_flags_and_quick_mode():
    from edgespec.sim.cli import sweep_config
    cfg = sweep_config(_parse("sweep", "--rtt", "0", "25", "--rate", "0", "10", "--loss", "0", "1", "--k", "2", "4"))
    assert cfg.rtts == (0, 25) and cfg.cells() == [(0, 0), (0, 1), (10, 0), (10, 1)] and cfg.ks == (2, 4)
    quick = sweep_config(_parse("sweep", "--quick", "--model", "tiny"))
    assert quick.workload.num_prompts == 1 and quick.k_scan == () and quick.workload.model == "tiny"


@pytest.mark.parametrize("bad", [{"rtt_ms": -1}, {"loss_pct": 100}, {"rate_mbit": float("nan")}])
def test_link_shape_rejects_impossible_links(bad):
    with pytest.raises(ValueError):
        LinkShape(**bad)


def test_grid_policies_cross_acceptance_rules():
    cfg = SweepConfig(policies=("fixed", "auto", "server"), ks=(2, 3), acceptance=("exact", "rejection"))
    labels = [p.label for p in grid_policies(cfg)]
    assert labels[:4] == ["fixed k=2", "fixed k=3", "auto", "server-only"]
    assert labels[4] == "fixed k=2 · rejection T=0.7" and len(labels) == 8
    assert grid_policies(cfg)[4].fields["temperature"] == 0.7
    with pytest.raises(ValueError, match="unknown policy"):
        grid_policies(SweepConfig(policies=("nope",)))


@pytest.fixture
def recorded(record_sh):
    """Record the commands shaping would run (every one succeeds)."""
    return record_sh(shaping)


def test_netem_mechanism_shapes_both_ends_with_half_the_rtt_plus_jitter(recorded):
    lab = netns.Lab("123ab")
    result = shaping.apply(lab, LinkShape(rtt_ms=50, jitter_ms=5, loss_pct=1, rate_mbit=20), "netem")
    assert result.proxy_link is None
    qdisc = [c for c in recorded if "netem" in c]
    assert len(qdisc) == 2 and {c[2] for c in qdisc} == {lab.device, lab.edge}
    assert qdisc[0][qdisc[0].index("netem"):] == ("netem", "delay", "27.5ms", "2.5ms", "loss", "1%", "rate", "20mbit")


def test_userspace_mechanism_uses_tbf_nft_and_the_proxy(recorded):
    lab = netns.Lab("123ab")
    result = shaping.apply(lab, LinkShape(rtt_ms=50, jitter_ms=5, loss_pct=2.5, rate_mbit=10), "userspace")
    assert result.proxy_link == LinkSpec(rtt_ms=50, jitter_ms=5)
    tbf = [c for c in recorded if "tbf" in c]
    assert len(tbf) == 2
    burst = int(tbf[0][tbf[0].index("burst") + 1])
    assert burst >= 16 << 10, "tbf burst must stay far above the MTU"
    drops = [c for c in recorded if "drop" in c]
    assert len(drops) == 2 and all(c[c.index("<") + 1] == "250" for c in drops)  # 2.5 % of 10000
    assert {c[c.index("oifname") + 1] for c in drops} == {lab.device_if, lab.edge_if}


def test_no_root_is_one_line_and_nonzero(monkeypatch, capsys):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    assert cli.main(["sim", "--model", "tiny"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs root" in err[0]


def test_no_iproute2_is_one_line_and_nonzero(monkeypatch, capsys):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda tool: None)
    assert cli.main(["sim", "sweep", "--quick"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "iproute2" in err[0]


async def test_probe_measures_the_proxy_delay_on_loopback(tmp_path):
    ready = tmp_path / "ready"
    server = asyncio.create_task(probe.serve("127.0.0.1:0", str(ready)))
    while not ready.exists():
        await asyncio.sleep(0.01)
    try:
        result = await probe.measure(ready.read_text(), LinkSpec(rtt_ms=20), 0.0, quick=True)
    finally:
        server.cancel()
    assert result["tcp_rtt_ms"]["p50"] >= 20 and result["tcp_path"].startswith("device delay proxy")
    assert result["udp_echoed"] == result["udp_sent"] and result["rate_up_mbit"] > 1


def _payload() -> dict:
    def run(rtt, policy, tokens, seconds, rounds, parity=True, acceptance="exact"):
        stats = {"rounds": rounds, "accepted_tokens": max(tokens - rounds, 0), "server_tokens": 0 if rounds else tokens,
                 "bytes_up": 60 * rounds, "bytes_down": 20 * rounds, "drafted_tokens": 3 * rounds,
                 "round_trip_ms": {"p50": rtt + 5.0}}
        return {"rate_mbit": 0.0, "loss_pct": 0.0, "rtt_ms": rtt, "policy": policy, "acceptance": acceptance,
                "prompt_id": "p1", "tokens": tokens, "seconds": seconds, "ttft_ms": 10 + rtt, "parity": parity,
                "stats": stats}
    link = {"rate_mbit": 0.0, "loss_pct": 0.0, "rtt_ms": 0.0, "shaping": "tbf ...", "rate_up_mbit": 900.0,
            "rate_down_mbit": 900.0, "loss_per_direction_pct": 0.0, "tcp_rtt_ms": {"p50": 0.3, "min": 0.2, "max": 1}}
    return {"meta": {"model": "tiny", "prompts": ["p1"], "max_new_tokens": 30, "torch_threads": 1, "date": "now",
                     "mechanism": "userspace", "machine": "x", "reference": "HF target-only (local)"},
            "labels": ["fixed k=3", "server-only", "fixed k=3 · rejection T=0.7"],
            "links": [link, {**link, "rtt_ms": 50}],
            "baselines": [{"system": "draft-only", "prompt_id": "p1", "tokens": 30, "seconds": 1.0, "parity": False}],
            "runs": [run(0.0, "fixed k=3", 30, 1.0, 10), run(50.0, "fixed k=3", 30, 2.0, 10),
                     run(0.0, "server-only", 30, 0.5, 0), run(50.0, "server-only", 30, 0.6, 0),
                     run(0.0, "fixed k=3 · rejection T=0.7", 30, 1.0, 12, False, "rejection")]}


def test_report_renders_tables_and_plots(tmp_path):
    payload = _payload()
    cells = sweep_report.summarize_cells(payload)
    cell = cells["rate unlimited, loss 0%"]["table"]["0.0"]["fixed k=3"]
    assert cell["tokens_per_second"] == 30 and cell["bytes_per_round"] == 80 and cell["mean_k"] == 3
    assert cells["rate unlimited, loss 0%"]["table"]["0.0"]["fixed k=3 · rejection T=0.7"]["parity"] == "n/a (sampled)"
    paths = sweep_report.write_report(payload, tmp_path)
    markdown = (tmp_path / "sim_sweep.md").read_text()
    assert "| fixed k=3 | 30.00 (10) | 15.00 (60) |" in markdown and "draft-only" in markdown
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    assert json.loads((tmp_path / "sim_sweep.json").read_text())["meta"]["model"] == "tiny"
