"""The namespace lab end to end (root + iproute2; skipped with the reason otherwise), on the `tiny`
preset: at 50 ms RTT every round takes >= 50 ms and greedy output equals target-only decoding;
5% loss per direction still completes; a dead target or a Ctrl-C ends the run with a clear error
within a deadline and leaves no namespace, veth, nft table or process behind; a one-cell sweep
writes its report; `sim cleanup` removes labs of dead runs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from edgespec.bench.baselines import target_only
from edgespec.models.presets import load_model
from edgespec.sim.config import LinkShape, Runtime, SimConfig, SweepConfig, Workload
from edgespec.sim.netns import Lab, create, destroy, namespaces, stale_labs
from edgespec.sim.run import run_sim
from edgespec.sim.sweep import run_sweep
from lab_checks import assert_nothing_left, my_namespaces, needs_lab, needs_nft

pytestmark = [needs_lab, pytest.mark.timeout(120)]
TINY = Workload(model="tiny", num_prompts=2, max_new_tokens=24)


@pytest.fixture(scope="module")
def tiny_target():
    return load_model("tiny", "target")


def _assert_greedy_parity(report: dict, tiny_target) -> None:
    for record in report["runs"]:
        result = record["result"]
        expected = target_only(tiny_target.model, result["prompt_token_ids"], TINY.max_new_tokens,
                               tiny_target.eos_token_ids).token_ids
        assert result["token_ids"] == expected, f"{record['job']}: not the target's greedy output"


def test_rounds_take_the_rtt_and_output_is_lossless(tiny_target, no_stray_labs):
    report = run_sim(SimConfig(link=LinkShape(rtt_ms=50), workload=TINY, policy="fixed", k=3), echo=lambda s: None)
    assert report["shaping"]["mechanism"] in ("netem", "userspace")
    assert report["link"]["tcp_rtt_ms"]["p50"] >= 50
    assert len(report["runs"]) == TINY.num_prompts
    for record in report["runs"]:
        stats = record["result"]["stats"]
        assert stats["rounds"] > 0 and stats["round_trip_ms"]["p50"] >= 50, stats["round_trip_ms"]
    _assert_greedy_parity(report, tiny_target)
    assert not my_namespaces()


@needs_nft
def test_five_percent_loss_still_completes(tiny_target, no_stray_labs):
    link = LinkShape(rtt_ms=10, loss_pct=5, rate_mbit=20)
    report = run_sim(SimConfig(link=link, workload=TINY, policy="fixed", k=3), echo=lambda s: None)
    assert report["link"]["udp_echoed"] < report["link"]["udp_sent"]  # the drop rules bite
    assert 1 < report["link"]["loss_per_direction_pct"] < 15
    assert len(report["runs"]) == TINY.num_prompts
    _assert_greedy_parity(report, tiny_target)


def _start_long_run() -> tuple[subprocess.Popen, Lab]:
    """`edgespec sim` as a real CLI process with a workload far longer than the test; returns it
    and its lab once the workload has started."""
    argv = [sys.executable, "-m", "edgespec", "sim", "--model", "tiny", "--rtt", "20", "--policy", "fixed",
            "--k", "3", "--num-prompts", "3", "--max-new-tokens", "1500"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lab = None
    for line in proc.stdout:
        if match := re.search(r"namespaces esim-dev-(\w+)", line):
            lab = Lab(match.group(1))
        if line.startswith("workload:"):
            break
    assert lab is not None, f"no workload started: {proc.stderr.read()}"
    time.sleep(1.0)  # generation under way
    return proc, lab


def _pids(namespace: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    return [int(p) for p in done.stdout.split()]


def test_killing_the_target_fails_fast_and_cleans_up(no_stray_labs):
    proc, lab = _start_long_run()
    try:
        edge_pids, device_pids = _pids(lab.edge), _pids(lab.device)
        assert edge_pids and len(device_pids) >= 2  # target; draft + workload client
        for pid in edge_pids:
            os.kill(pid, signal.SIGKILL)
        start = time.monotonic()
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert time.monotonic() - start < 30
    assert proc.returncode == 1
    assert len(stderr.strip().splitlines()) == 1 and "target" in stderr and "killed by SIGKILL" in stderr, stderr
    assert_nothing_left(lab, edge_pids + device_pids)


def test_ctrl_c_tears_everything_down(no_stray_labs):
    proc, lab = _start_long_run()
    try:
        pids = _pids(lab.edge) + _pids(lab.device)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert_nothing_left(lab, pids)


def test_sweep_smoke_writes_report_with_parity(tmp_path, no_stray_labs):
    cfg = SweepConfig(rtts=(20.0,), rates=(0.0,), losses=(0.0,), policies=("fixed", "server"), ks=(2,), k_scan=(),
                      workload=Workload(model="tiny", num_prompts=1, max_new_tokens=12),
                      runtime=Runtime(out=str(tmp_path)))
    payload = run_sweep(cfg)
    assert payload["links"][0]["tcp_rtt_ms"]["p50"] >= 20
    assert {r["policy"] for r in payload["runs"]} == {"fixed k=2", "server-only"}
    assert all(r["parity"] for r in payload["runs"])  # both equal HF target-only, measured in the same run
    assert {b["system"].split(" ")[0] for b in payload["baselines"]} == {"target-only", "draft-only", "HF"}
    for name in ("sim_sweep.json", "sim_sweep.md", "sim_tokens_per_s.png", "sim_ttft.png", "sim_tau_rounds_bytes.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_cleanup_removes_labs_of_dead_runs():
    dead_pid = 4194303  # above the default pid_max: no live process has it
    lab = Lab(f"{dead_pid}ff")
    create(lab)
    try:
        assert lab in stale_labs()
        done = subprocess.run([sys.executable, "-m", "edgespec", "sim", "cleanup"], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert lab.device not in namespaces() and lab.edge not in namespaces()
    finally:
        destroy(lab)
