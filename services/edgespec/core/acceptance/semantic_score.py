"""The semantic rule's scoring maths: per-position features from hidden states and output
embeddings, the training-free score, the optional calibrated logistic head (`SemanticHead`,
fitted offline and loaded by the target) and the channel-aware threshold. Pure tensors; loading a head
from a file lives in `edgespec.models.semantic_head`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgespec.core.acceptance_params import AcceptanceParams
from edgespec.core.types import Channel

FEATURES: tuple[str, ...] = ("cos_hidden", "cos_embedding", "log_p_draft", "log_p_target", "top3_entropy")


@dataclass(frozen=True)
class SemanticHead:
    """A logistic head over FEATURES: P(substitution keeps the meaning) = sigmoid(w . f + b).
    `projection` [d_target, d_draft] maps draft hidden states into the target's space (needed
    when the two hidden sizes differ; None means the identity)."""

    weights: torch.Tensor                   # [len(FEATURES)] float32
    bias: float
    projection: torch.Tensor | None = None  # [d_target, d_draft] float32

    def __post_init__(self) -> None:
        if self.weights.shape != (len(FEATURES),):
            raise ValueError(f"semantic head: expected {len(FEATURES)} weights, got {list(self.weights.shape)}")

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """features [n, F] -> [n] probabilities."""
        return torch.sigmoid(features.float() @ self.weights.float() + self.bias)


def features(draft_hidden: torch.Tensor, target_hidden: torch.Tensor, lm_head: torch.Tensor,
             drafts: torch.Tensor, target_logits: torch.Tensor,
             projection: torch.Tensor | None = None) -> torch.Tensor:
    """FEATURES per position: draft_hidden [n, d_draft], target_hidden [n, d], lm_head [V, d],
    drafts [n] ids, target_logits [n, V] -> [n, F] float32."""
    h_draft = draft_hidden.float() if projection is None else draft_hidden.float() @ projection.float().T
    cos_h = torch.nn.functional.cosine_similarity(h_draft, target_hidden.float(), dim=-1)
    own = target_logits.argmax(-1)
    cos_e = torch.nn.functional.cosine_similarity(lm_head[drafts].float(), lm_head[own].float(), dim=-1)
    logp = torch.log_softmax(target_logits.float(), dim=-1)
    rows = torch.arange(drafts.numel())
    top = torch.topk(logp, min(3, logp.shape[-1]), dim=-1).values
    return torch.stack([cos_h, cos_e, logp[rows, drafts], logp[rows, own],
                        -(top.exp() * top).sum(-1)], dim=-1)


def training_free_score(feats: torch.Tensor) -> torch.Tensor:
    """The mean of the two cosines (hidden states, output embeddings) [n, F] -> [n] in [-1, 1]."""
    return 0.5 * (feats[:, 0] + feats[:, 1])


def round_cost_ms(channel: Channel | None, upload_bytes: int) -> float:
    """What one more round costs on this link: RTT plus the upload time of a block."""
    if channel is None:
        return 0.0
    upload_ms = 8e3 * upload_bytes / channel.uplink_bps if channel.uplink_bps > 0 else 0.0
    return max(0.0, channel.rtt_ms) + upload_ms


def threshold(params: AcceptanceParams, cost_ms: float) -> float:
    """Channel-aware threshold: semantic_threshold on a free channel, falling monotonically to
    semantic_threshold_min as the round cost grows (halfway at semantic_ref_ms)."""
    hi, lo = params.semantic_threshold, params.semantic_threshold_min
    return lo + (hi - lo) * params.semantic_ref_ms / (params.semantic_ref_ms + max(0.0, cost_ms))
