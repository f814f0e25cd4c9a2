"""llama.cpp as a draft runtime: `LlamaCppModel` (a GGUF loaded once through llama-cpp-python's
low-level C API) and `LlamaCppSequence`, one session's context with the same interface as the
torch `KVSequence` — committed tokens, a KV cache over a prefix of them, `feed` returning logits
(and post-norm hidden states) for every fed position, exact rollback with `llama_memory_seq_rm`.

Only llama.cpp's forward pass is used: sampling happens in `core.sampling` on the full logits
(never llama.cpp's samplers), so q is exactly what the rules see. Not thread-safe: a model and
its sequences are driven from one thread (the draft's model executor). This module does not
choose a runtime (`draft_runtime.py`) and does not locate or quantize GGUFs (`gguf_quant.py`).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import torch

from edgespec.models.kv_sequence import ForwardOut

BATCH_TOKENS = 512   # tokens per llama_decode call (longer feeds are split)
# Shorter feeds go one token per llama_decode: on one CPU thread a 2-token batch costs ~4x a
# 1-token one (no reuse in small GEMMs), and llama.cpp gives identical logits either way.
SMALL_FEED = 8
_LOG_SINK = None     # keeps the ctypes log callback alive


def llama_cpp_module():
    """`llama_cpp.llama_cpp` (the C API, initialised and quiet), or ImportError saying how to get it."""
    try:
        from llama_cpp import llama_cpp
    except (ImportError, OSError) as exc:  # missing, or a build whose shared library does not load
        raise ImportError(f"llama-cpp-python is not usable here ({exc}); install it with "
                          "`pip install llama-cpp-python==0.3.36` (builds llama.cpp: needs cmake and g++)") from exc
    _quiet(llama_cpp)
    return llama_cpp


def _quiet(lib) -> None:
    """Route llama.cpp's own logging to nowhere (it prints tensor tables at every load)."""
    global _LOG_SINK
    if _LOG_SINK is None:
        _LOG_SINK = lib.llama_log_callback(lambda level, text, user_data: None)
        lib.llama_log_set(_LOG_SINK, ctypes.c_void_p(0))
        lib.llama_backend_init()


class LlamaCppModel:
    """A GGUF's weights, loaded once and shared by every session's context."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        self.lib = llama_cpp_module()
        params = self.lib.llama_model_default_params()
        params.n_gpu_layers = 0
        self.path = Path(path)
        self.model = self.lib.llama_model_load_from_file(str(self.path).encode(), params)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {self.path}")
        self.vocab_size = int(self.lib.llama_vocab_n_tokens(self.lib.llama_model_get_vocab(self.model)))
        self.hidden_size = int(self.lib.llama_model_n_embd(self.model))
        self.threads = max(1, threads)

    def sequence(self, prompt_ids: list[int], max_tokens: int, hidden: bool = False) -> LlamaCppSequence:
        """A fresh session context holding up to `max_tokens` positions (prompt included);
        `hidden`: also return the post-norm hidden state of every fed position."""
        return LlamaCppSequence(self, prompt_ids, max_tokens, hidden)

    def close(self) -> None:
        if self.model:
            self.lib.llama_model_free(self.model)
            self.model = None


def _tensor(rows: list[np.ndarray]) -> torch.Tensor:
    """The copied output rows as one tensor (no second copy for the usual single chunk)."""
    return torch.from_numpy(rows[0] if len(rows) == 1 else np.concatenate(rows))


class LlamaCppSequence:
    """Committed tokens and a llama.cpp KV cache over `cache_len` of them (plus speculative feeds)."""

    def __init__(self, owner: LlamaCppModel, prompt_ids: list[int], max_tokens: int, hidden: bool) -> None:
        self.lib, self.owner, self.hidden = owner.lib, owner, hidden
        params = self.lib.llama_context_default_params()
        params.n_ctx = max(max_tokens, 16)
        params.n_batch = params.n_ubatch = BATCH_TOKENS
        params.n_seq_max = 1
        params.n_threads = params.n_threads_batch = owner.threads
        params.embeddings = hidden
        params.pooling_type = self.lib.LLAMA_POOLING_TYPE_NONE
        self.ctx = self.lib.llama_init_from_model(owner.model, params)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not create a context of {max_tokens} tokens")
        self.capacity = int(self.lib.llama_n_ctx(self.ctx))
        self.memory = self.lib.llama_get_memory(self.ctx)
        self.batch = self.lib.llama_batch_init(BATCH_TOKENS, 0, 1)
        self.tokens: list[int] = list(prompt_ids)
        self.cache_len = 0
        self.forward_passes = 0

    def pending(self) -> list[int]:
        """Committed tokens not yet in the cache."""
        return self.tokens[self.cache_len:]

    def prefill(self) -> None:
        """Feed the prompt minus its last token (which leads the first block), computing no logits."""
        if len(self.tokens) > 1:
            self._decode(self.tokens[self.cache_len:-1], outputs=False)
            self.forward_passes += 1

    def feed(self, ids: list[int], hidden: bool = False, last_only: bool = False) -> ForwardOut:
        """One forward pass over `ids` on top of the cache; logits [n, V] float32 for every
        position (`last_only`: for the last alone)."""
        if hidden and not self.hidden:
            raise ValueError("hidden_states: this llama.cpp context was opened without embeddings")
        rows = self._decode(list(ids), outputs=True, hidden=hidden, last_only=last_only)
        self.forward_passes += 1
        logits, states = (_tensor(part) if part else None for part in rows)
        return ForwardOut(logits=logits, hidden=states)

    def rollback(self, length: int) -> None:
        """Drop cached positions at and beyond `length` (exact: re-feeding reproduces the logits)."""
        if self.cache_len > length:
            self.lib.llama_memory_seq_rm(self.memory, 0, length, -1)
            self.cache_len = length

    def commit(self, ids: list[int] | tuple[int, ...]) -> None:
        """Append committed tokens (the cache catches up on the next feed)."""
        self.tokens.extend(ids)

    def close(self) -> None:
        """Free the context and its KV cache now (idempotent)."""
        if self.ctx:
            self.lib.llama_batch_free(self.batch)
            self.lib.llama_free(self.ctx)
            self.ctx = None

    def _decode(self, ids: list[int], outputs: bool, hidden: bool = False,
                last_only: bool = False) -> tuple[list, list]:
        if self.ctx is None:
            raise RuntimeError("the llama.cpp sequence is closed")
        if self.cache_len + len(ids) > self.capacity:
            raise ValueError(f"max_new_tokens: the draft context holds {self.capacity} tokens, "
                             f"{self.cache_len + len(ids)} were asked for")
        logits, states = [], []
        step = 1 if len(ids) < SMALL_FEED else BATCH_TOKENS
        for start in range(0, len(ids), step):
            chunk = ids[start:start + step]
            last = start + len(chunk) == len(ids)
            out = outputs and (last or not last_only)   # this chunk's rows are wanted
            wanted = [out and (not last_only or i == len(chunk) - 1) for i in range(len(chunk))]
            rows = decode(self.owner, self.ctx, self.batch, [(t, self.cache_len + i, 0, w)
                                                             for i, (t, w) in enumerate(zip(chunk, wanted))], hidden)
            self.cache_len += len(chunk)
            if out:
                logits.append(rows[0])
            if out and hidden:
                states.append(rows[1])
        return logits, states


BatchItem = tuple[int, int, int, bool]   # (token, position, sequence id, its output row is wanted)


def decode(owner: LlamaCppModel, ctx, batch, items: list[BatchItem], hidden: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """One `llama_decode` of `items` (any sequences) in `batch`; the wanted rows' logits [m, V]
    (and post-norm hidden states [m, d] when `hidden`), copied, in item order."""
    lib = owner.lib
    batch.n_tokens = len(items)
    for i, (token, position, seq, wanted) in enumerate(items):
        batch.token[i] = token
        batch.pos[i] = position
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = wanted
    status = lib.llama_decode(ctx, batch)
    if status != 0:
        raise RuntimeError(f"llama_decode failed with status {status}")
    n = sum(wanted for *_, wanted in items)
    if not n:
        return np.empty((0, owner.vocab_size), np.float32), np.empty((0, owner.hidden_size), np.float32) if hidden else None
    logits = _rows(lib.llama_get_logits(ctx), n, owner.vocab_size)
    return logits, _rows(lib.llama_get_embeddings(ctx), n, owner.hidden_size) if hidden else None


def _rows(pointer, n: int, width: int) -> np.ndarray:
    """Copy n output rows out of llama.cpp's buffer (it is reused by the next decode)."""
    return np.ctypeslib.as_array(pointer, shape=(n, width)).copy()
