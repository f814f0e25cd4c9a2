"""LlamaCppRunner: a llama.cpp draft model as a `StepRunner`, so one draft process batches the
draft steps of the many sessions (devices, SDK clients) it serves. One llama.cpp context holds a
sequence per session (`SequencePool`: up to `sessions` sequences sharing `kv_cache_tokens`
positions, each session reserving what it may use); a step is ONE `llama_decode` over every
feed's tokens, each with its own sequence id and positions.

The KV cache is llama.cpp's unified one. Split streams (`kv_unified=false`, a stream per sequence)
decode a step in one piece only when its sequences are consecutive ids with equal token counts,
which drafting sessions never are (measured, 16 sequences: 12 one-token feeds with gaps 131 ms
split vs 62 ms unified; a third of them feeding 2 tokens 111 vs 95 ms); unified costs a few ms
more per step at equal shapes, as every token's attention scans the cells of all sequences.

A batch pays on llama.cpp's CPU backend only once it is big enough: small GEMMs leave its GEMV
path (measured here, one thread, SmolLM2 Q8_0: 1 token 6.8 ms, 2 tokens 25.7, 8 tokens 45.9,
16 tokens 53.0). So the runner times its own decodes at 1, 2, 4, ... tokens when it starts and,
each step, runs the feeds as one decode only when that is estimated cheaper than decoding them one
after another (each small feed token by token, as a private context does). Rollback is lazy and
exact: a feed at position L first drops the sequence's cells from L on (`llama_memory_seq_rm`),
and a released sequence's cells go before the next decode, both on the model thread. Not a
scheduler (the batch engine is) and no sampling (the drafter samples).
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import deque

import numpy as np
import torch

from edgespec.models.engine_config import EngineConfig
from edgespec.models.kv_pool import Slot
from edgespec.models.llamacpp import SMALL_FEED, BatchItem, LlamaCppModel, decode
from edgespec.models.step_runner import StepFeed, StepOut

log = logging.getLogger(__name__)
CALIBRATION_SIZES = (1, 2, 4, 8, 16, 32)
MAX_SEQUENCES = 256   # llama.cpp's LLAMA_MAX_SEQ


class SequencePool:
    """`tokens` KV positions shared by up to `sessions` sequences (`Slot.offset` is the sequence
    id). Freed sequences queue in `released` until the runner drops their cells (model thread)."""

    def __init__(self, sessions: int, tokens: int) -> None:
        self.tokens = self.max_slot = tokens
        self.used = 0
        self._free = list(range(sessions - 1, -1, -1))
        self.released: deque[int] = deque()     # thread-safe append / popleft

    def allocate(self, capacity: int) -> Slot | None:
        if self.used + capacity > self.tokens or not self._free:
            return None
        self.used += capacity
        return Slot(self._free.pop(), capacity)

    def free(self, slot: Slot) -> None:
        self.released.append(slot.offset)
        self._free.append(slot.offset)
        self.used -= slot.capacity
        slot.capacity = slot.length = 0

    def largest_free(self) -> int:
        return self.tokens - self.used if self._free else 0


class LlamaCppRunner:
    """Batched (or, where batching does not pay, back-to-back) decodes of a shared llama.cpp context."""

    def __init__(self, model: LlamaCppModel, config: EngineConfig, sessions: int) -> None:
        if not 1 <= sessions <= MAX_SEQUENCES:
            raise ValueError(f"max_sessions: a batching llama.cpp draft holds at most {MAX_SEQUENCES} sessions "
                             f"(its Drafter and embedded orchestrator sessions together), not {sessions}")
        lib = self.lib = model.lib
        self.model = model
        params = lib.llama_context_default_params()
        params.n_seq_max = sessions
        params.n_ctx = config.kv_cache_tokens + config.max_batch_tokens   # headroom for a step's cells
        params.n_batch = params.n_ubatch = config.max_batch_tokens
        params.n_threads = params.n_threads_batch = model.threads
        params.kv_unified = True
        params.pooling_type = lib.LLAMA_POOLING_TYPE_NONE
        self.ctx = lib.llama_init_from_model(model.model, params)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not create a context of {config.kv_cache_tokens} tokens "
                               f"for {sessions} sequences")
        self.memory = lib.llama_get_memory(self.ctx)
        self.batch = lib.llama_batch_init(config.max_batch_tokens, 0, 1)
        self.pool = SequencePool(sessions, config.kv_cache_tokens)
        self.written = [0] * sessions      # cells each sequence holds (rolled back lazily)
        self.embeddings = False
        self.costs = self._calibrate([n for n in CALIBRATION_SIZES if n <= min(sessions, config.max_batch_tokens)])
        log.info("llama.cpp draft batching: %s ms per decode of 1, 2, 4, ... tokens; %d sequences, %d positions",
                 ", ".join(f"{c:.1f}" for c in self.costs.values()), sessions, self.pool.tokens)

    def run(self, feeds: list[StepFeed]) -> list[StepOut]:
        hidden = any(feed.hidden for feed in feeds)
        if hidden != self.embeddings:
            self.lib.llama_set_embeddings(self.ctx, hidden)
            self.embeddings = hidden
        while self.pool.released:               # cells of sequences released since the last step
            seq = self.pool.released.popleft()
            self.lib.llama_memory_seq_rm(self.memory, seq, -1, -1)
            self.written[seq] = 0
        for feed in feeds:
            seq, length = feed.slot.offset, feed.slot.length
            if self.written[seq] > length:
                self.lib.llama_memory_seq_rm(self.memory, seq, length, -1)
            self.written[seq] = length + len(feed.ids)
        groups = [feeds] if self.batch_pays(feeds) else [[feed] for feed in feeds]
        return [out for group in groups for out in self._run_group(group)]

    def batch_pays(self, feeds: list[StepFeed]) -> bool:
        """Whether one decode of every feed is estimated cheaper than decoding them one by one."""
        if len(feeds) < 2:
            return True
        alone = sum(self.cost(len(f.ids)) if len(f.ids) >= SMALL_FEED else len(f.ids) * self.cost(1) for f in feeds)
        return self.cost(sum(len(f.ids) for f in feeds)) < alone

    def cost(self, tokens: int) -> float:
        """Estimated ms of one decode of `tokens` tokens (piecewise linear over the calibration,
        extended along its last segment)."""
        sizes = list(self.costs)
        if len(sizes) == 1:
            return self.costs[1] * tokens
        high = sizes[min(max(bisect.bisect_left(sizes, tokens), 1), len(sizes) - 1)]
        low = sizes[sizes.index(high) - 1]
        return self.costs[low] + (self.costs[high] - self.costs[low]) / (high - low) * (tokens - low)

    def _run_group(self, feeds: list[StepFeed]) -> list[StepOut]:
        """One decode of the feeds together, or (a lone short feed) token by token. The decode
        takes the feeds in sequence-id order: with split KV streams, llama.cpp runs a batch whose
        sequences come out of order ~3x slower (16 one-token feeds: 187 ms shuffled, 59 sorted)."""
        order = sorted(range(len(feeds)), key=lambda i: feeds[i].slot.offset)
        items = [item for i in order for item in _items(feeds[i])]
        chunks = [items] if len(feeds) > 1 or len(items) >= SMALL_FEED else [[item] for item in items]
        rows = [decode(self.model, self.ctx, self.batch, chunk, self.embeddings) for chunk in chunks]
        logits = torch.from_numpy(np.concatenate([r[0] for r in rows]))
        states = torch.from_numpy(np.concatenate([r[1] for r in rows])) if self.embeddings else None
        outs: list[StepOut] = [(None, None)] * len(feeds)
        at = 0
        for i in order:
            feed, part = feeds[i], slice(at, at + feeds[i].rows)
            if feed.rows:
                outs[i] = (logits[part], states[part] if feed.hidden else None)
            at += feed.rows
        return outs

    def _calibrate(self, sizes: list[int]) -> dict[int, float]:
        """Median ms of a decode of n one-token sequences, for each n in `sizes` (then cleared)."""
        costs = {}
        for n in sizes:
            times = []
            for _ in range(4):
                self.lib.llama_memory_clear(self.memory, True)
                start = time.perf_counter()
                decode(self.model, self.ctx, self.batch, [(1, 0, seq, True) for seq in range(n)], False)
                times.append((time.perf_counter() - start) * 1e3)
            costs[n] = sorted(times[1:])[1]    # the first is a warm-up
        self.lib.llama_memory_clear(self.memory, True)
        return costs

    def close(self) -> None:
        if self.ctx:
            self.lib.llama_batch_free(self.batch)
            self.lib.llama_free(self.ctx)
            self.ctx = None


def _items(feed: StepFeed) -> list[BatchItem]:
    n, start = len(feed.ids), feed.slot.length
    return [(token, start + i, feed.slot.offset, i >= n - feed.rows) for i, token in enumerate(feed.ids)]
