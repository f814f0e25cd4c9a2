"""`edgespec bench capacity` on the tiny preset (a smoke run of the real thing, no timing goals):
every mode at every N commits exactly N x max_new_tokens, the batched replay reproduces the
recorded verdicts, unbatched steps hold one session, and JSON/Markdown/PNG are written."""

from __future__ import annotations

import json

from edgespec.cli import main


def test_capacity_bench_runs_every_mode_and_writes_outputs(tmp_path):
    code = main(["bench", "capacity", "--model", "tiny", "--runtime", "torch", "--sessions", "1", "3",
                 "--max-new-tokens", "12", "--k", "3", "--limit", "2", "--out", str(tmp_path)])
    assert code == 0
    payload = json.loads((tmp_path / "capacity.json").read_text())
    cells = payload["cells"]
    assert [(c["mode"], c["sessions"]) for c in cells] == [
        (m, n) for n in (1, 3) for m in ("batched", "unbatched", "server-only")]   # interleaved
    for c in cells:
        assert c["tokens"] == c["sessions"] * 12
        assert c["tokens_per_s"] > 0 and c["round_p99_ms"] >= c["round_p50_ms"] > 0
        assert c["cpu_s_per_token"] > 0
        if c["mode"] != "server-only":
            assert c["parity"] == 1.0
        if c["mode"] == "unbatched":
            assert c["batch_sessions"] == 1.0
    assert payload["meta"]["tau"] > 1.0
    assert "| batched | 3 |" in (tmp_path / "capacity.md").read_text()
    assert (tmp_path / "capacity.png").stat().st_size > 1000
