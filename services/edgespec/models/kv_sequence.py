"""KVSequence: one session's committed token ids plus an HF DynamicCache over a prefix of them,
with rollback as a first-class operation. Not thread-safe; the owner runs it on one thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache


@dataclass(frozen=True)
class ForwardOut:
    """Logits (and optionally last hidden states) for every fed position."""

    logits: torch.Tensor                 # [n, V] float32
    hidden: torch.Tensor | None = None   # [n, d] last-layer (post-norm) hidden states


class KVSequence:
    """Committed tokens and a KV cache that covers `cache_len` of them (plus speculative feeds)."""

    def __init__(self, model: torch.nn.Module, prompt_ids: list[int]) -> None:
        self.model = model
        self.tokens: list[int] = list(prompt_ids)
        self.cache = DynamicCache(config=model.config)
        self.forward_passes = 0

    @property
    def cache_len(self) -> int:
        return self.cache.get_seq_length()

    def pending(self) -> list[int]:
        """Committed tokens not yet in the cache."""
        return self.tokens[self.cache_len:]

    def feed(self, ids: list[int], hidden: bool = False, last_only: bool = False) -> ForwardOut:
        """One forward pass over `ids` on top of the cache; the cache grows by len(ids).
        `last_only`: outputs for the last position alone (the LM head runs on one row)."""
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.model.device)
        out = self.model(input_ids=input_ids, past_key_values=self.cache, use_cache=True,
                         output_hidden_states=hidden, logits_to_keep=1 if last_only else 0)
        self.forward_passes += 1
        states = out.hidden_states[-1][0, -1 if last_only else 0:].float() if hidden else None
        return ForwardOut(logits=out.logits[0].float().cpu(), hidden=states)

    def prefill(self) -> None:
        """Feed the prompt minus its last token (which leads the first block)."""
        if len(self.tokens) > 1:
            self.feed(self.tokens[self.cache_len:-1], last_only=True)

    def close(self) -> None:
        """Free the KV cache now, not at garbage collection."""
        self.cache = None

    def rollback(self, length: int) -> None:
        """Drop cached positions beyond `length` (crop takes a negative count; crop(-0) would wipe)."""
        extra = self.cache_len - length
        if extra > 0:
            self.cache.crop(-extra)

    def commit(self, ids: list[int] | tuple[int, ...]) -> None:
        """Append committed tokens (the cache catches up on the next feed)."""
        self.tokens.extend(ids)
