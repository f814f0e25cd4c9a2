"""The speculative decoding loop: one async generator, identical for local and remote drafters
and verifiers. It knows nothing about models, tokenizers or transport — only the protocols.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection

from edgespec.core.draft_length import DraftLengthPolicy
from edgespec.core.types import Drafter, StepResult, Verifier


async def generate(drafter: Drafter, verifier: Verifier, policy: DraftLengthPolicy,
                   max_new_tokens: int, stop_token_ids: Collection[int] = ()) -> AsyncIterator[StepResult]:
    """Run rounds until `max_new_tokens` are committed or a stop token is; yield each round."""
    produced = 0
    while produced < max_new_tokens:
        k = max(0, min(policy.next_k(), max_new_tokens - produced - 1))  # 1. choose draft length
        t0 = time.perf_counter()
        proposal = await drafter.propose(k)                               # 2. draft k tokens (+ q(x))
        t1 = time.perf_counter()
        verdict = await verifier.verify(proposal)                         # 3. one target pass + rule
        t2 = time.perf_counter()
        committed = await drafter.commit(verdict)                         # 4. keep accepted, roll back
        policy.observe(k, verdict.accepted)                               # 5. learn from the outcome
        tokens, finish = _truncate(committed.tokens, stop_token_ids, max_new_tokens - produced)
        produced += len(tokens)
        yield StepResult(
            tokens=tokens, drafted=k, accepted=verdict.accepted, draft_ms=proposal.draft_ms,
            verify_ms=verdict.verify_ms, round_trip_ms=(t2 - t1) * 1e3,
            round_ms=(time.perf_counter() - t0) * 1e3, bytes_up=verdict.bytes_up,
            bytes_down=verdict.bytes_down, target_forward_passes=verdict.target_forward_passes,
            finish_reason=finish or ("length" if produced >= max_new_tokens else None))
        if finish:
            return


def _truncate(tokens: tuple[int, ...], stop_token_ids: Collection[int],
              budget: int) -> tuple[tuple[int, ...], str | None]:
    """Cut `tokens` after the first stop token (kept) and to `budget`; say whether it stopped."""
    for i, token in enumerate(tokens[:budget]):
        if token in stop_token_ids:
            return tokens[: i + 1], "stop"
    return tokens[:budget], None
