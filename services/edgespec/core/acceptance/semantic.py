"""`semantic`: channel-aware hidden-state acceptance for device-edge links, in the spirit of WISV
(Liu et al. 2026, arXiv:2604.17701; only its abstract is public, so the mechanics here are our
own reading). LOSSY.

The lossless test runs first. A position it rejects is scored from the draft's uploaded final
hidden state and the target's own state at the same position: by default the training-free mean
of cos(h_draft, h_target) and cos(E[x_draft], E[y_target]) over the target's output embeddings
E; with a calibrated `SemanticHead` its logistic probability instead. The draft token is kept
when the score reaches a threshold that falls as one more round gets costlier (the measured
RTT plus the block's upload time at the measured uplink bandwidth), within
[semantic_threshold_min, semantic_threshold]. The first position that fails both ends the block
and the target's own token is committed there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from edgespec.core.acceptance.base import Needs, Outcome, RuleInputs, relax_after_lossless
from edgespec.core.acceptance.semantic_score import features, round_cost_ms, threshold, training_free_score
from edgespec.core.acceptance_params import AcceptanceParams
from edgespec.core.types import Distribution, SamplingParams


class Semantic:
    """The lossless test, then a hidden-state score against a channel-aware threshold."""

    name = "semantic"
    lossless = False

    def check(self, params: SamplingParams) -> None:
        """Any sampling params: when sampling, the base test is rejection sampling."""

    def needs(self, params: AcceptanceParams) -> Needs:
        return Needs(target_hidden=True, draft_hidden=True, channel=True)

    def verify(self, draft_tokens: Sequence[int], q_probs: Sequence[float],
               target_logits: torch.Tensor, params: SamplingParams,
               generator: torch.Generator, inputs: RuleInputs = RuleInputs()) -> Outcome:
        return relax_after_lossless(
            draft_tokens, q_probs, target_logits, params, generator,
            lambda start: scores(draft_tokens, target_logits, inputs, start) >= block_threshold(inputs, len(draft_tokens)))

    def correct(self, residual_p: Distribution, q: torch.Tensor, generator: torch.Generator) -> int:
        raise ValueError("acceptance 'semantic' never defers the correction to the draft side")


def block_threshold(inputs: RuleInputs, k: int) -> float:
    """The threshold for a k-token block on the link in `inputs.channel`."""
    d = inputs.draft_hidden.shape[-1] if inputs.draft_hidden is not None else 0
    return threshold(inputs.params, round_cost_ms(inputs.channel, upload_bytes=2 * k * d))


def scores(draft_tokens: Sequence[int], target_logits: torch.Tensor, inputs: RuleInputs,
           start: int = 0) -> torch.Tensor:
    """[k - start] scores of positions start..k-1 (training-free, or the head's probability)."""
    k = len(draft_tokens)
    if inputs.draft_hidden is None or inputs.target_hidden is None or inputs.lm_head is None:
        raise ValueError("semantic: needs the draft hidden states, target hidden states and LM head")
    head = inputs.head
    feats = features(inputs.draft_hidden[start:k], inputs.target_hidden[start:k], inputs.lm_head,
                     torch.tensor(list(draft_tokens[start:]), dtype=torch.long), target_logits[start:k],
                     None if head is None else head.projection)
    return training_free_score(feats) if head is None else head.score(feats)
