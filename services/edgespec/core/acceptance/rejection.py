"""`rejection`: speculative sampling (Leviathan et al. 2023, Chen et al. 2023), lossless at any
temperature with top-k/top-p, split across the network DSSD-style: the target tests
r_i <= p_i(x_i) / q_i(x_i) from uploaded q(x) scalars and samples the bonus itself; on a rejection
it hands p_j back and the draft side, which holds q_j, samples norm(max(0, p_j - q_j)).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from edgespec.core.acceptance.base import Needs, Outcome, RuleInputs, first_rejection, greedy_outcome, residual
from edgespec.core.acceptance_params import AcceptanceParams
from edgespec.core.sampling import probs_from_logits, sample
from edgespec.core.types import Distribution, SamplingParams


class RejectionSampling:
    """Speculative sampling; at temperature 0 it reduces to exact argmax matching."""

    name = "rejection"
    lossless = True

    def check(self, params: SamplingParams) -> None:
        """Any valid sampling params work."""

    def needs(self, params: AcceptanceParams) -> Needs:
        return Needs()

    def verify(self, draft_tokens: Sequence[int], q_probs: Sequence[float],
               target_logits: torch.Tensor, params: SamplingParams,
               generator: torch.Generator, inputs: RuleInputs = RuleInputs()) -> Outcome:
        if params.greedy:
            return greedy_outcome(draft_tokens, target_logits)
        k = len(draft_tokens)
        if len(q_probs) != k:
            raise ValueError(f"q_probs: expected {k} values (one per draft token), got {len(q_probs)}")
        p = probs_from_logits(target_logits, params)                     # [k+1, V]
        drafted = torch.tensor(list(draft_tokens), dtype=torch.long)
        p_x = p[torch.arange(k), drafted].to(torch.float64)              # [k]
        q_x = torch.tensor(list(q_probs), dtype=torch.float64)           # [k]
        r = torch.rand(k, generator=generator, dtype=torch.float64)      # [k]
        n = first_rejection(r * q_x <= p_x)
        if n == k:
            return Outcome(accepted=k, token=sample(p[k], generator))
        return Outcome(accepted=n, token=None, residual_p=Distribution.compact(p[n]))

    def correct(self, residual_p: Distribution, q: torch.Tensor, generator: torch.Generator) -> int:
        return sample(residual(residual_p.dense(), q), generator)
