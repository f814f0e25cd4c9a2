"""`edgespec calibrate` on the tiny preset with a stub similarity (no MiniLM): the head file it writes
loads with the target's loader, the fit separates an easy synthetic dataset, labels follow the
threshold, and a bad flag gives one line on stderr."""

from __future__ import annotations

import argparse

import torch

from edgespec.bench.calibrate import add_calibrate_flags, auc, fit, label, run_calibrate
from edgespec.cli import main
from edgespec.core.acceptance.semantic_score import FEATURES
from edgespec.models.semantic_head import load_head


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_calibrate_flags(p)
    return p.parse_args(list(argv))


def _same_first_word(a: list[str], b: list[str]) -> list[float]:
    """Stub similarity: 1.0 when the two texts start with the same word, else 0.0."""
    return [float(x.split()[:1] == y.split()[:1]) for x, y in zip(a, b)]


def test_tiny_run_writes_a_head_the_target_loads(tmp_path, capsys):
    out = tmp_path / "head.pt"
    a = _args("--model", "tiny", "--out", str(out), "--per-category", "1", "--max-new-tokens", "8",
              "--continuation", "3", "--max-mismatches", "24", "--steps", "50")
    assert run_calibrate(a, similarity=_same_first_word) == 0
    head = load_head(out)
    assert head.weights.shape == (len(FEATURES),) and head.projection is None
    meta = torch.load(out, weights_only=True)["meta"]
    assert 0 < meta["samples"] <= 24 and meta["model"] == "tiny"
    assert "training accuracy" in capsys.readouterr().out


def test_fit_separates_an_easy_synthetic_dataset():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, len(FEATURES), generator=g) * torch.tensor([0.1, 0.2, 3.0, 1.0, 0.5])
    y = (x[:, 0] + 0.05 * x[:, 2] > 0.02).float()  # raw-feature scales differ: the fold-back must hold
    head = fit(x, y, l2=1e-4, steps=300)
    p = head.score(x)
    assert ((p >= 0.5).float() == y).float().mean() > 0.95
    assert auc(p, y) > 0.99
    assert auc(-p, y) < 0.01 and auc(p, torch.ones(400)) != auc(p, torch.ones(400))  # one class: NaN


def test_label_thresholds_similarity_in_batches():
    calls = []

    def sim(a, b):
        calls.append(len(a))
        return [1.0 if x == y else 0.2 for x, y in zip(a, b)]

    a = ["Paris is the capital"] * 70 + ["two"]
    b = ["Paris is the capital"] * 70 + ["2"]
    y = label(sim, a, b, threshold=0.85)
    assert y.tolist() == [1.0] * 70 + [0.0] and calls == [64, 7]
    assert label(sim, ["x"], ["y"], threshold=0.2).tolist() == [1.0]  # >= threshold counts as equivalent


def test_bad_flag_is_one_line_on_stderr(tmp_path, capsys):
    code = main(["calibrate", "--model", "tiny", "--out", str(tmp_path / "h.pt"), "--continuation", "0"])
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "edgespec calibrate: error: --continuation: must be >= 1, got 0"]
    assert not (tmp_path / "h.pt").exists()
