"""Read and write the calibrated semantic head file (`save_head` writes it, `edgespec target
--semantic-head FILE` reads it): a small torch file holding the logistic weights over
`FEATURES`, the bias and an optional draft->target hidden projection. Not the scoring maths
(see `edgespec.core.acceptance.semantic_score`).
"""

from __future__ import annotations

import os
import pickle

import torch

from edgespec.core.acceptance.semantic_score import FEATURES, SemanticHead

FORMAT = "edgespec-semantic-head/1"


def save_head(head: SemanticHead, path: str | os.PathLike, meta: dict | None = None) -> None:
    torch.save({"format": FORMAT, "features": list(FEATURES), "weights": head.weights.float(),
                "bias": float(head.bias), "projection": head.projection, "meta": meta or {}}, path)


def load_head(path: str | os.PathLike) -> SemanticHead:
    """The head stored at `path`; ValueError when the file is not one."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
        raise ValueError(f"semantic_head: cannot read {path}: {exc}") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or blob.get("features") != list(FEATURES):
        raise ValueError(f"semantic_head: {path} is not a {FORMAT} file over features {FEATURES}")
    return SemanticHead(weights=blob["weights"], bias=blob["bias"], projection=blob["projection"])
