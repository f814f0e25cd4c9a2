"""EngineSequence: one draft session's KV sequence living in a shared `BatchEngine` slot, with the
synchronous interface of a private sequence (`KVSequence`, `LlamaCppSequence`) so `LocalDrafter`
drives it unchanged. Its calls block the session's worker thread on the engine (which runs on the
event loop `loop`) while other sessions' feeds join the same step; so a batching draft server
gives every session its own worker thread (`draft.serve`). The slot is reserved at prefill (a
bounded wait, then `KVPoolExhausted`) and released at close. Not thread-safe per session: one
worker drives it at a time, as with the private sequences.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from edgespec.models.batch_engine import BatchEngine
from edgespec.models.kv_pool import Slot
from edgespec.models.kv_sequence import ForwardOut


class EngineSequence:
    """Committed tokens and an engine slot caching `cache_len` of them (plus speculative feeds)."""

    def __init__(self, engine: BatchEngine, loop: asyncio.AbstractEventLoop, prompt_ids: list[int],
                 max_tokens: int) -> None:
        self.engine, self.loop, self.max_tokens = engine, loop, max_tokens
        self.tokens: list[int] = list(prompt_ids)
        self.slot: Slot | None = None
        self.forward_passes = 0

    @staticmethod
    def opener(engine: BatchEngine, loop: asyncio.AbstractEventLoop) -> Callable[[list[int], int, bool], EngineSequence]:
        """A `LoadedDraft.open_sequence` that opens sequences in `engine`."""
        return lambda prompt_ids, max_tokens, _hidden: EngineSequence(engine, loop, prompt_ids, max_tokens)

    @property
    def cache_len(self) -> int:
        return self.slot.length if self.slot is not None else 0

    def pending(self) -> list[int]:
        """Committed tokens not yet in the cache."""
        return self.tokens[self.cache_len:]

    def prefill(self) -> None:
        """Reserve the slot, then feed the prompt minus its last token (which leads the first block)."""
        if self.slot is None:
            self.slot = self._wait(self.engine.reserve(self.max_tokens))
        if len(self.tokens) > 1:
            self._wait(self.engine.feed(self.slot, self.tokens[self.cache_len:-1]))
            self.forward_passes += 1

    def feed(self, ids: list[int], hidden: bool = False, last_only: bool = False) -> ForwardOut:
        """One forward over `ids` on top of the slot (batched with other sessions' feeds)."""
        if self.slot is None:
            raise RuntimeError("the engine sequence has no slot (prefill first, or it was closed)")
        out = self._wait(self.engine.feed(self.slot, list(ids), rows=1 if last_only else len(ids), hidden=hidden))
        self.forward_passes += 1
        return ForwardOut(logits=out.logits, hidden=out.hidden)

    def rollback(self, length: int) -> None:
        if self.slot is not None:
            self.slot.rollback(length)

    def commit(self, ids: list[int] | tuple[int, ...]) -> None:
        self.tokens.extend(ids)

    def close(self) -> None:
        """Release the slot now (idempotent)."""
        slot, self.slot = self.slot, None
        if slot is not None:
            self._wait(_release(self.engine, slot))

    def _wait(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()


async def _release(engine: BatchEngine, slot: Slot) -> None:
    engine.release(slot)
