"""`exact`: greedy argmax matching. Output equals target-only greedy decoding token for token.
Lossless; needs no draft probabilities (a greedy draft is one-hot), so only token ids go upstream.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from edgespec.core.acceptance.base import Needs, Outcome, RuleInputs, greedy_outcome
from edgespec.core.acceptance_params import AcceptanceParams
from edgespec.core.types import Distribution, SamplingParams


class ExactMatch:
    """Accept x_i iff x_i == argmax p_i; correction/bonus = argmax of p at that position."""

    name = "exact"
    lossless = True

    def check(self, params: SamplingParams) -> None:
        if not params.greedy:
            raise ValueError("acceptance 'exact' requires temperature 0; use 'rejection' to sample")

    def needs(self, params: AcceptanceParams) -> Needs:
        return Needs()

    def verify(self, draft_tokens: Sequence[int], q_probs: Sequence[float],
               target_logits: torch.Tensor, params: SamplingParams,
               generator: torch.Generator, inputs: RuleInputs = RuleInputs()) -> Outcome:
        return greedy_outcome(draft_tokens, target_logits)

    def correct(self, residual_p: Distribution, q: torch.Tensor, generator: torch.Generator) -> int:
        raise ValueError("acceptance 'exact' never defers the correction to the draft side")
