"""The round-cost model behind `auto` (algorithms.md §7.2, §7.4), as pure functions:

    E[tokens](k) = 1 + sum_{j<=k} prod_{i<=j} alpha_i          (per-position acceptance curve)
    T_round(k)   = k t_draft + RTT + bytes_up(k) / bandwidth + t_verify(k)
    k*           = argmax_k E[tokens](k) / T_round(k)

and the server-only rate 1 / t_verify(0): the target streams its own tokens, one forward each,
with one round trip for the whole run. Not a policy: `auto.py` adds smoothing and hysteresis.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgespec.core.draft_length.estimates import LinkSnapshot


@dataclass(frozen=True)
class Choice:
    """The best draft length under the model and the rates it compares (tokens per ms)."""

    k: int
    speculative_rate: float
    server_rate: float


def expected_tokens(alpha: tuple[float, ...], k: int) -> float:
    """Committed tokens per round with k drafts: accepted prefix + the bonus/correction."""
    total, survive = 1.0, 1.0
    for a in alpha[:k]:
        survive *= a
        total += survive
    return total


def round_ms(link: LinkSnapshot, k: int) -> float:
    bytes_up = link.bytes_up_base + link.bytes_up_per_token * (k + 1)
    return k * link.draft_ms_per_token + link.rtt_ms + bytes_up * link.ms_per_byte + link.verify_ms[k]


def best_k(link: LinkSnapshot, alpha: tuple[float, ...], k_max: int) -> Choice:
    """k* in 1..k_max maximising tokens per ms, and the server-only rate to compare it with."""
    rates = {k: expected_tokens(alpha, k) / max(round_ms(link, k), 1e-6) for k in range(1, k_max + 1)}
    k = max(rates, key=rates.__getitem__)
    return Choice(k=k, speculative_rate=rates[k], server_rate=1.0 / max(link.verify_ms[0], 1e-6))
