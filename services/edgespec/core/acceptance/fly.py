"""`fly`: training-free loosely speculative decoding (Li et al. 2025, arXiv:2511.22972; the
official `fly/models/FLy.py` greedy path). LOSSY: a mismatched draft token can be kept.

The whole block is verified (target argmax and top-3 entropy at all k positions, not only up to
the first mismatch):
  1. a_i: the lossless test (x_i == argmax p_i when greedy; r_i <= p_i/q_i when sampling);
  2. entropy gate: a mismatch where the target is sure, H3_i < theta (top-3 entropy of the
     temperature-1 softmax, not renormalised, so H3 <= ln 3), is a hard reject;
  3. deferred window: a mismatch at 0-based j is rescued iff the W-1 following tokens are exact
     matches (a_{j+1..j+W-1}, the ORIGINAL flags) and j <= k - W - 1.
The off-by-one follows the official code (W-1 following matches, and the window never reaches the
last draft position), not vLLM's port (W following). Hence a rescue needs k > W: with k <= W FLy
is exactly `exact`. With an adaptive draft-length policy that shrinks k to W or below, rescues
stop; a rescued round counts as fully accepted, which pushes such policies to longer blocks
(a feedback loop that helps FLy). Use k >= 2W for rescues to fire often (official: k=15, W=6).
Rescued tokens need no recompute: the target already ran on them (KV is right).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from edgespec.core.acceptance.base import Needs, Outcome, RuleInputs, base_accepts, relaxed_outcome
from edgespec.core.acceptance_params import AcceptanceParams
from edgespec.core.types import Distribution, SamplingParams

LN3 = math.log(3.0)


def top3_entropy(logits: torch.Tensor) -> torch.Tensor:
    """-sum over the 3 most likely tokens of p ln p, p = softmax(logits) [k, V] -> [k] nats."""
    logp = torch.log_softmax(logits.to(torch.float32), dim=-1)
    top = torch.topk(logp, min(3, logp.shape[-1]), dim=-1).values
    return -(top.exp() * top).sum(-1)


def window_rescue(match: torch.Tensor, window: int) -> torch.Tensor:
    """[k] bool: mismatches rescued by the deferred window (see the module docstring)."""
    k = match.numel()
    rescued = torch.zeros(k, dtype=torch.bool)
    for j in range(max(0, k - window)):         # j <= k - W - 1
        if not match[j] and bool(match[j + 1: j + window].all()):
            rescued[j] = True
    return rescued


class Fly:
    """Entropy gate + deferred window on top of the lossless test."""

    name = "fly"
    lossless = False

    def check(self, params: SamplingParams) -> None:
        """Any sampling params: when sampling, a_i is the rejection test and corrections are p_j samples."""

    def needs(self, params: AcceptanceParams) -> Needs:
        return Needs()

    def verify(self, draft_tokens: Sequence[int], q_probs: Sequence[float],
               target_logits: torch.Tensor, params: SamplingParams,
               generator: torch.Generator, inputs: RuleInputs = RuleInputs()) -> Outcome:
        k = len(draft_tokens)
        match = base_accepts(draft_tokens, q_probs, target_logits, params, generator)   # [k]
        hard = (top3_entropy(target_logits[:k]) < inputs.params.entropy_threshold) & ~match
        accept = (match | window_rescue(match, inputs.params.window)) & ~hard
        return relaxed_outcome(match, accept, target_logits, params, generator)

    def correct(self, residual_p: Distribution, q: torch.Tensor, generator: torch.Generator) -> int:
        raise ValueError("acceptance 'fly' never defers the correction to the draft side")
