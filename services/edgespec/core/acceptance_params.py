"""AcceptanceParams: the per-request knobs of the lossy acceptance rules (DropMatch, FLy,
semantic), validated once at session start. A plain frozen record: which rule runs is
`SessionSpec.acceptance`; what each knob does is documented with the rule that reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Criterion = Literal["naive", "js"]
Upload = Literal["full", "mismatch-first"]

CRITERIA: tuple[str, ...] = ("naive", "js")
UPLOADS: tuple[str, ...] = ("full", "mismatch-first")
MAX_DROPOUT_PATHS = 64
MAX_DRAFT_TOP_K = 1024
MAX_WINDOW = 32


@dataclass(frozen=True)
class AcceptanceParams:
    """Rule parameters; the defaults are the papers' (DropMatch K=5 p=0.3 JS; FLy W=6 theta=0.3)."""

    dropout_paths: int = 5                 # dropmatch: K dropout masks on the LM-head input
    dropout_p: float = 0.3                 # dropmatch: p_drop in [0, 1)
    dropout_criterion: Criterion = "js"    # dropmatch: "naive" (any path's argmax) or "js" (Eq. 6 + 7)
    draft_top_k: int = 64                  # dropmatch js: top-k of q uploaded per draft token
    entropy_threshold: float = 0.3         # fly: theta on the target's top-3 entropy, nats
    window: int = 6                        # fly: W = the mismatch + W-1 following exact matches
    semantic_threshold: float = 0.75       # semantic: score threshold on a perfect channel
    semantic_threshold_min: float = 0.55   # semantic: floor reached as the round cost grows
    semantic_ref_ms: float = 50.0          # semantic: round cost (ms) at which it sits halfway
    semantic_upload: Upload = "full"       # semantic: "full" or "mismatch-first" hidden upload

    def __post_init__(self) -> None:
        _check(1 <= self.dropout_paths <= MAX_DROPOUT_PATHS, "dropout_paths", f"1..{MAX_DROPOUT_PATHS}",
               self.dropout_paths)
        _check(0.0 <= self.dropout_p < 1.0, "dropout_p", "[0, 1)", self.dropout_p)
        _check(self.dropout_criterion in CRITERIA, "dropout_criterion", " or ".join(CRITERIA),
               self.dropout_criterion)
        _check(1 <= self.draft_top_k <= MAX_DRAFT_TOP_K, "draft_top_k", f"1..{MAX_DRAFT_TOP_K}",
               self.draft_top_k)
        _check(math.isfinite(self.entropy_threshold) and self.entropy_threshold >= 0,
               "entropy_threshold", ">= 0 nats", self.entropy_threshold)
        _check(1 <= self.window <= MAX_WINDOW, "window", f"1..{MAX_WINDOW}", self.window)
        for name in ("semantic_threshold", "semantic_threshold_min"):
            value = getattr(self, name)
            _check(math.isfinite(value) and -1.0 <= value <= 1.0, name, "[-1, 1]", value)
        _check(self.semantic_threshold_min <= self.semantic_threshold, "semantic_threshold_min",
               f"<= semantic_threshold ({self.semantic_threshold})", self.semantic_threshold_min)
        _check(math.isfinite(self.semantic_ref_ms) and self.semantic_ref_ms > 0, "semantic_ref_ms",
               "> 0", self.semantic_ref_ms)
        _check(self.semantic_upload in UPLOADS, "semantic_upload", " or ".join(UPLOADS),
               self.semantic_upload)


def _check(ok: bool, field: str, expected: str, got: object) -> None:
    if not ok:
        raise ValueError(f"acceptance_params.{field}: must be {expected}, got {got!r}")
