"""What every acceptance rule shares: the Outcome record, the rule protocol, `Needs` (what a rule
asks of the draft and the target beyond logits), `RuleInputs` (those extras for one block) and
small helpers (first rejection index, residual norm(max(0, p - q)), the lossless base test that
the lossy rules try first). Rules are pure functions of their inputs; they never see models,
sessions or the wire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from edgespec.core.acceptance_params import AcceptanceParams
from edgespec.core.sampling import probs_from_logits
from edgespec.core.types import Channel, Distribution, SamplingParams, TopQ

if TYPE_CHECKING:
    from edgespec.core.acceptance.semantic_score import SemanticHead


@dataclass(frozen=True)
class Outcome:
    """The target-side decision for one block."""

    accepted: int                           # leading draft tokens kept, 0..k
    token: int | None                       # bonus or target-chosen correction
    residual_p: Distribution | None = None  # p_j when the draft side must sample the correction
    relaxed: int = 0                        # accepted beyond the lossless test's own prefix


@dataclass(frozen=True)
class Needs:
    """What a rule reads beyond the target logits; the verifier and drafter provide exactly this."""

    target_hidden: bool = False             # the target's post-norm final hidden states + LM head
    draft_hidden: bool = False              # the draft's final hidden state per drafted token
    top_q: bool = False                     # the draft's top-n q per drafted token
    channel: bool = False                   # the measured link, stamped on every block


@dataclass(frozen=True)
class RuleInputs:
    """One block's extras for the rules that need them (see `Needs`); all optional."""

    params: AcceptanceParams = AcceptanceParams()
    target_hidden: torch.Tensor | None = None   # [k+1, d] post-norm, the LM head's input
    lm_head: torch.Tensor | None = None         # [V, d] the target's output embeddings
    draft_hidden: torch.Tensor | None = None    # [k, d_draft] float32
    top_q: TopQ | None = None                   # [k, n] top-n draft probabilities
    channel: Channel | None = None              # the link, as measured before this round
    head: SemanticHead | None = None            # calibrated semantic head (semantic rule)


class AcceptanceRule(Protocol):
    """A verification rule; `verify` runs on the target, `correct` on the draft side."""

    name: str
    lossless: bool

    def check(self, params: SamplingParams) -> None:
        """Raise ValueError if the rule cannot run with these sampling params."""

    def needs(self, params: AcceptanceParams) -> Needs:
        """What this rule reads beyond logits under `params`."""

    def verify(
        self,
        draft_tokens: Sequence[int],        # [k]
        q_probs: Sequence[float],           # [k] q_i(x_i); empty for a greedy draft
        target_logits: torch.Tensor,        # [k+1, V] target logits at x_1..x_k and the bonus slot
        params: SamplingParams,
        generator: torch.Generator,
        inputs: RuleInputs = RuleInputs(),
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


def base_accepts(draft_tokens: Sequence[int], q_probs: Sequence[float], target_logits: torch.Tensor,
                 params: SamplingParams, generator: torch.Generator) -> torch.Tensor:
    """The lossless test per position, [k] bool: x_i == argmax p_i when greedy, else
    r_i <= p_i(x_i) / q_i(x_i) (one uniform per position, drawn whatever the outcome)."""
    k = len(draft_tokens)
    drafted = torch.tensor(list(draft_tokens), dtype=torch.long)
    if params.greedy:
        return target_logits[:k].argmax(-1) == drafted
    if len(q_probs) != k:
        raise ValueError(f"q_probs: expected {k} values (one per draft token), got {len(q_probs)}")
    p = probs_from_logits(target_logits[:k], params)                    # [k, V]
    p_x = p[torch.arange(k), drafted].to(torch.float64)
    r = torch.rand(k, generator=generator, dtype=torch.float64)
    return r * torch.tensor(list(q_probs), dtype=torch.float64) <= p_x


def relax_after_lossless(draft_tokens: Sequence[int], q_probs: Sequence[float], target_logits: torch.Tensor,
                         params: SamplingParams, generator: torch.Generator, relax) -> Outcome:
    """The lossy rules' shape: run the lossless test, then let `relax(start)` -> [k - start] bool
    accept more from its first rejection `start` on; commit via `relaxed_outcome`."""
    base = base_accepts(draft_tokens, q_probs, target_logits, params, generator)     # [k]
    start = first_rejection(base)
    accept = base.clone()
    if start < len(draft_tokens):
        accept[start:] |= relax(start)
    return relaxed_outcome(base, accept, target_logits, params, generator)


def relaxed_outcome(base: torch.Tensor, accept: torch.Tensor, target_logits: torch.Tensor,
                    params: SamplingParams, generator: torch.Generator) -> Outcome:
    """Commit the longest accepted prefix of `accept` [k] and the target's own token after it
    (argmax, or a sample of p_j: a lossy rule needs no draft-side residual); `relaxed` counts
    the accepted tokens beyond the lossless test's prefix `base` [k]."""
    n = first_rejection(accept)
    row = target_logits[n]
    token = int(row.argmax()) if params.greedy else int(
        torch.multinomial(probs_from_logits(row, params), 1, generator=generator))
    return Outcome(accepted=n, token=token, relaxed=n - first_rejection(base))
