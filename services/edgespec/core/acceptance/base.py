"""What every acceptance rule shares: the Outcome record, the rule protocol and small helpers
(first rejection index, residual norm(max(0, p - q))). Rules are pure functions of draft tokens,
q(x) scalars and target logits; they never see models, sessions or the wire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from edgespec.core.types import Distribution, SamplingParams


@dataclass(frozen=True)
class Outcome:
    """The target-side decision for one block."""

    accepted: int                           # leading draft tokens kept, 0..k
    token: int | None                       # bonus or target-chosen correction
    residual_p: Distribution | None = None  # p_j when the draft side must sample the correction


class AcceptanceRule(Protocol):
    """A verification rule; `verify` runs on the target, `correct` on the draft side."""

    name: str
    lossless: bool

    def check(self, params: SamplingParams) -> None:
        """Raise ValueError if the rule cannot run with these sampling params."""

    def verify(
        self,
        draft_tokens: Sequence[int],        # [k]
        q_probs: Sequence[float],           # [k] q_i(x_i); empty for a greedy draft
        target_logits: torch.Tensor,        # [k+1, V] target logits at x_1..x_k and the bonus slot
        params: SamplingParams,
        generator: torch.Generator,
    ) -> Outcome: ...

    def correct(
        self,
        residual_p: Distribution,           # p_j at the first rejected position
        q: torch.Tensor,                    # [V] the draft distribution x_j was sampled from
        generator: torch.Generator,
    ) -> int: ...


def first_rejection(accept: torch.Tensor) -> int:
    """Index of the first False in the bool vector `accept` [k], or k if all are True."""
    rejected = torch.nonzero(~accept)
    return int(rejected[0, 0]) if rejected.numel() else int(accept.numel())


def residual(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """norm(max(0, p - q)) over the full vocabulary [V]; falls back to p when p ~= q."""
    diff = torch.clamp(p.to(torch.float64) - q.to(torch.float64), min=0.0)
    total = diff.sum()
    if total <= 1e-12:
        return p.to(torch.float64) / p.sum()
    return diff / total


def greedy_outcome(draft_tokens: Sequence[int], target_logits: torch.Tensor) -> Outcome:
    """Accept while x_i == argmax p_i; the correction or bonus is the target argmax."""
    argmax = target_logits.argmax(-1)                                   # [k+1]
    drafted = torch.tensor(list(draft_tokens), dtype=argmax.dtype)
    n = first_rejection(argmax[: len(drafted)] == drafted)
    return Outcome(accepted=n, token=int(argmax[n]))
