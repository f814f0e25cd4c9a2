"""`dropmatch`: Monte-Carlo dropout on the target's LM head for semantic token acceptance
(Lee et al. 2026, arXiv:2603.03333, Algorithm 1). LOSSY.

The lossless test runs first (exact match when greedy, r <= p/q when sampling); from its first
rejection on, each position t gets K dropout paths over the target's post-norm final hidden
state h_t (the LM head's input): h^(i) = (h_t * m^(i)) / (1 - p_drop), m^(i)_j ~ Bernoulli(1 -
p_drop), masks from the session's seeded generator, logits l^(i) = W h^(i) with the shared head
W [V, d] — one fused (K*n) x d @ d x V matmul. Criteria:
  naive  accept x_t if it is any path's argmax (Eq. 4; needs token ids only);
  js     accept if JS(q_t || c_t) <= max_i JS(p^(i)_t || c_t), c_t = softmax(mean_i l^(i)) (Eq. 5-6),
         else if x_t is the majority of the path argmaxes (Eq. 7: the collapsed case, where all
         paths agree and the max JS spread is ~0).
The JS criterion's q_t is the draft's top-n distribution (the temperature-1 softmax when drafting
greedily), uploaded sparse: n probabilities plus the tail mass as one bucket. Every distribution
in the test is coarsened onto those n + 1 buckets (the path and centroid mass outside the draft's
top-n ids is summed into the tail), so both sides of Eq. 6 are measured on the same partition.
Coarsening can only shrink a JS divergence, so this is an approximation of the paper's
full-vocabulary test, not a bound on it; n = 64 keeps nearly all of a peaked q.
The correction at the first position rejected by both tests is the target's own token.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from edgespec.core.acceptance.base import Needs, Outcome, RuleInputs, relax_after_lossless
from edgespec.core.acceptance_params import AcceptanceParams
from edgespec.core.types import Distribution, SamplingParams, TopQ


def dropout_logits(hidden: torch.Tensor, lm_head: torch.Tensor, paths: int, p_drop: float,
                   generator: torch.Generator) -> torch.Tensor:
    """K dropout paths per position: hidden [n, d], lm_head [V, d] -> logits [K, n, V]."""
    n, d = hidden.shape
    keep = torch.rand((paths, n, d), generator=generator) >= p_drop       # Bernoulli(1 - p_drop)
    dropped = hidden.float().unsqueeze(0) * keep / (1.0 - p_drop)         # [K, n, d], E = h
    return (dropped.reshape(paths * n, d) @ lm_head.float().T).reshape(paths, n, -1)


def _coarsen(probs: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """[..., V] distributions onto the buckets `ids` [n] + tail -> [..., n + 1]."""
    head = probs[..., ids]
    return torch.cat([head, (1.0 - head.sum(-1, keepdim=True)).clamp_min(0.0)], dim=-1)


def js_divergence(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence in nats over the last dim (0 * log 0 = 0)."""
    a, b = a.double(), b.double()
    m = 0.5 * (a + b)

    def kl(x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, x * (x.clamp_min(1e-300).log() - m.clamp_min(1e-300).log()), 0.0).sum(-1)
    return 0.5 * kl(a) + 0.5 * kl(b)


def js_accepts(path_logits: torch.Tensor, drafts: torch.Tensor, top_q: TopQ) -> torch.Tensor:
    """Eq. 6 with the Eq. 7 majority fallback: path_logits [K, n, V], drafts [n] -> [n] bool."""
    paths = torch.softmax(path_logits, dim=-1)                           # [K, n, V]
    centroid = torch.softmax(path_logits.mean(0), dim=-1)                # [n, V]
    out = torch.zeros(drafts.numel(), dtype=torch.bool)
    for t in range(drafts.numel()):
        ids = top_q.indices[t]
        q = top_q.probs[t].double()
        q_b = torch.cat([q, (1.0 - q.sum()).clamp_min(0.0).reshape(1)])
        c_b = _coarsen(centroid[t], ids)
        spread = js_divergence(_coarsen(paths[:, t], ids), c_b.expand(paths.shape[0], -1)).max()
        out[t] = bool(js_divergence(q_b, c_b) <= spread)
    votes = path_logits.argmax(-1)                                      # [K, n]
    majority = torch.mode(votes, dim=0).values                           # [n]
    return out | (majority == drafts)


class DropMatch:
    """The lossless test, then MC-dropout agreement on the LM head (naive or JS criterion)."""

    name = "dropmatch"
    lossless = False

    def check(self, params: SamplingParams) -> None:
        """Any sampling params: when sampling, the base test is rejection sampling."""

    def needs(self, params: AcceptanceParams) -> Needs:
        return Needs(target_hidden=True, top_q=params.dropout_criterion == "js")

    def verify(self, draft_tokens: Sequence[int], q_probs: Sequence[float],
               target_logits: torch.Tensor, params: SamplingParams,
               generator: torch.Generator, inputs: RuleInputs = RuleInputs()) -> Outcome:
        return relax_after_lossless(draft_tokens, q_probs, target_logits, params, generator,
                                    lambda start: self._dropout_accepts(draft_tokens, start, inputs, generator))

    def _dropout_accepts(self, draft_tokens: Sequence[int], start: int, inputs: RuleInputs,
                         generator: torch.Generator) -> torch.Tensor:
        """[k - start] bool: the dropout criterion at positions start..k-1."""
        ap, k = inputs.params, len(draft_tokens)
        if inputs.target_hidden is None or inputs.lm_head is None:
            raise ValueError("dropmatch: the verifier must pass the target hidden states and LM head")
        drafts = torch.tensor(list(draft_tokens[start:]), dtype=torch.long)
        logits = dropout_logits(inputs.target_hidden[start:k], inputs.lm_head, ap.dropout_paths,
                                ap.dropout_p, generator)                 # [K, n, V]
        if ap.dropout_criterion == "naive":
            return (logits.argmax(-1) == drafts).any(0)
        if inputs.top_q is None:
            raise ValueError("top_q: the js criterion needs the draft's top-k probabilities")
        top_q = TopQ(inputs.top_q.indices[start:k], inputs.top_q.probs[start:k])
        return js_accepts(logits, drafts, top_q)

    def correct(self, residual_p: Distribution, q: torch.Tensor, generator: torch.Generator) -> int:
        raise ValueError("acceptance 'dropmatch' never defers the correction to the draft side")
