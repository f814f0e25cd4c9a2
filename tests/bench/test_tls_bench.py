"""`edgespec bench tls`: the summary's ratio and parity, and one real tiny run through both stacks
(plaintext, and TLS + token on both hops) producing its JSON and Markdown."""

from __future__ import annotations

import json

from edgespec.bench.tls import summarize
from edgespec.cli import main


def _run(system: str, prompt: str, tokens: list[int], seconds: float) -> dict:
    return {"system": system, "prompt_id": prompt, "pass": 0, "seconds": seconds, "token_ids": tokens}


def test_summary_ratio_and_parity():
    runs = [_run("plaintext", "a", [1, 2, 3, 4], 1.0), _run("TLS + token", "a", [1, 2, 3, 4], 2.0),
            _run("plaintext", "b", [5, 6], 1.0), _run("TLS + token", "b", [5, 7], 1.0)]
    summary = summarize(runs)
    assert summary["systems"]["plaintext"]["tokens_per_s"] == 3.0
    assert summary["systems"]["TLS + token"]["tokens_per_s"] == 2.0
    assert summary["secured_over_plaintext"] == round(2.0 / 3.0, 4)
    assert summary["paired_median_ratio"] == 0.75   # prompts a (0.5) and b (1.0)
    assert summary["parity"] == "1/2"   # prompt b differs


def test_bench_tls_runs_both_stacks(tmp_path):
    assert main(["bench", "tls", "--model", "tiny", "--limit", "1", "--max-new-tokens", "8", "--tls-passes", "1",
                 "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "tls.json").read_text())
    assert {r["system"] for r in report["runs"]} == {"plaintext", "TLS + token"}
    assert all(r["tokens"] == 8 for r in report["runs"])
    assert report["summary"]["parity"] == "1/1"
    assert "TLS + token / plaintext" in (tmp_path / "tls.md").read_text()
