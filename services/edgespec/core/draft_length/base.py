"""The draft-length policy protocol — `plan()` before a round, `observe()` after it — and
`PolicyConfig`, the per-request knobs every policy is built from. Policies are per-request
objects; they know nothing about models or the transport.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from edgespec.core.types import MAX_DRAFT_TOKENS, DraftPlan, StepResult


@dataclass(frozen=True)
class PolicyConfig:
    """Per-request policy settings (request fields and server flags map onto it)."""

    k: int = 4                  # fixed: every round; adaptive policies: the first round
    k_max: int = 16             # cap for adaptive policies
    proactive: bool = False     # pre-draft the next block while the verdict is in flight
    early_stop: str = "adaedl"  # auto's in-round stop: adaedl | svip | none
    adaedl_lambda: float = 0.5  # AdaEDL's initial threshold lambda_0
    svip_h: float = 0.3         # SVIP: stop once sqrt(0.15 * H) > h

    def __post_init__(self) -> None:
        if not 1 <= self.k <= MAX_DRAFT_TOKENS:
            raise ValueError(f"k: must be in 1..{MAX_DRAFT_TOKENS}, got {self.k}")
        if not 1 <= self.k_max <= MAX_DRAFT_TOKENS:
            raise ValueError(f"k_max: must be in 1..{MAX_DRAFT_TOKENS}, got {self.k_max}")
        if not 0.0 < self.adaedl_lambda < 1.0:
            raise ValueError(f"adaedl_lambda: must be in (0, 1), got {self.adaedl_lambda}")
        if not self.svip_h > 0:
            raise ValueError(f"svip_h: must be > 0, got {self.svip_h}")

    def ahead(self, k: int) -> int:
        """Tokens to pre-draft after a k-token block: the bonus guess plus one more block."""
        return min(k + 1, MAX_DRAFT_TOKENS + 1) if self.proactive else 0


class DraftLengthPolicy(Protocol):
    """Plans each round (draft length, early stop, pre-drafting, server mode) and learns."""

    name: str

    def plan(self) -> DraftPlan:
        """What the next round should do."""

    def observe(self, step: StepResult) -> None:
        """Feed back one committed step (a round, or one server-generated token)."""
