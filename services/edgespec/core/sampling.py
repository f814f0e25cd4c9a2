"""Logits -> probabilities under SamplingParams (temperature, top-k, top-p), entropy, and seeded
sampling. Shared by the draft (q) and the target (p) so both apply the same transformation.
Not an acceptance rule: see `acceptance/`.
"""

from __future__ import annotations

import torch

from edgespec.core.types import SamplingParams


def probs_from_logits(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Sampling distribution for each row of `logits` [..., V] -> [..., V] float32.

    Greedy (temperature 0) gives the one-hot argmax. Otherwise softmax(logits / T) restricted to
    the top-k tokens and the smallest nucleus of mass >= top_p, renormalised.
    """
    logits = logits.to(torch.float32)
    if params.greedy:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(torch.float32)
    # shift by the max first: (logits - max) / T <= 0 never overflows, however small T is
    scaled = (logits - logits.max(-1, keepdim=True).values) / params.temperature
    if 0 < params.top_k < scaled.shape[-1]:
        kth = torch.topk(scaled, params.top_k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        drop_sorted = mass_before >= params.top_p  # the first token always survives
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of the temperature-1 softmax of each row of `logits` [..., V] -> [...].

    -inf logits (a trimmed vocabulary) have p = 0 and add 0 (not 0 * -inf = NaN)."""
    logp = torch.log_softmax(logits.to(torch.float32), dim=-1)
    return -(logp.exp() * logp.clamp_min(torch.finfo(torch.float32).min)).sum(-1)


def sample(probs: torch.Tensor, generator: torch.Generator) -> int:
    """Draw one token id from `probs` [V] with the session's generator."""
    return int(torch.multinomial(probs, 1, generator=generator).item())


def make_generator(seed: int, stream: int) -> torch.Generator:
    """A CPU generator for one random stream of a session (stream ids keep draft/target apart)."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed((seed * 1_000_003 + stream) % (2**63))
    return gen
