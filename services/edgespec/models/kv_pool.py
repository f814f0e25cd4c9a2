"""KVPool: one preallocated key/value tensor pair per layer, `tokens` positions long, handed out
to sessions as contiguous slots (first fit, freed ranges coalesce). A slot knows its offset, its
reserved capacity and how many positions hold valid keys (`length`); rollback is setting the
length. Not a scheduler and not attention: `ragged_attention.py` reads and writes the tensors,
the batch engine decides who gets a slot. Not thread-safe: its owner allocates on one thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


class KVPoolExhausted(RuntimeError):
    """No slot fits within the pool's limit (-> RESOURCE_EXHAUSTED)."""


@dataclass
class Slot:
    """A session's range of pool positions: [offset, offset + capacity), the first `length` valid."""

    offset: int
    capacity: int
    length: int = 0

    def rollback(self, length: int) -> None:
        """Forget positions beyond `length` (they are overwritten by the next feed)."""
        self.length = min(self.length, length)


def kv_shape(config) -> tuple[int, int, int]:
    """(layers, kv heads, head dim) of a transformers decoder config."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, getattr(config, "num_key_value_heads", None) or heads, head_dim


def bytes_per_token(config, dtype: torch.dtype) -> int:
    """KV bytes one position takes over every layer (keys and values)."""
    layers, kv_heads, head_dim = kv_shape(config)
    return 2 * layers * kv_heads * head_dim * torch.empty((), dtype=dtype).element_size()


def pool_tokens(config, dtype: torch.dtype, device: torch.device | str, tokens: int,
                memory_fraction: float | None) -> int:
    """How many positions to preallocate: `tokens`, or with `memory_fraction` that share of the
    CUDA device's free memory now (after the model loaded) divided by the bytes per position."""
    if memory_fraction is None:
        return tokens
    if torch.device(device).type != "cuda":
        raise ValueError(f"kv_cache_memory_fraction: sizes the pool from GPU memory, and the model is on "
                         f"{torch.device(device).type}; give kv_cache_tokens instead")
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return max(1, int(free * memory_fraction) // bytes_per_token(config, dtype))


class KVPool:
    """`tokens` KV positions for every layer of a model, reserved per session."""

    def __init__(self, config, tokens: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> None:
        if tokens < 1:
            raise ValueError(f"kv_cache_tokens must be >= 1, got {tokens}")
        layers, kv_heads, head_dim = kv_shape(config)
        self.tokens = tokens
        # torch.empty: pages are touched (and counted by the OS) only as sessions write them
        self.keys = [torch.empty((kv_heads, tokens, head_dim), dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.empty((kv_heads, tokens, head_dim), dtype=dtype, device=device) for _ in range(layers)]
        self.bytes_per_token = bytes_per_token(config, dtype)
        self._free: list[tuple[int, int]] = [(0, tokens)]   # (start, size), sorted by start
        self.used = 0

    def allocate(self, capacity: int) -> Slot | None:
        """A slot of `capacity` positions, or None when no free range is that long."""
        for i, (start, size) in enumerate(self._free):
            if size >= capacity:
                if size == capacity:
                    del self._free[i]
                else:
                    self._free[i] = (start + capacity, size - capacity)
                self.used += capacity
                return Slot(start, capacity)
        return None

    def free(self, slot: Slot) -> None:
        """Return a slot's range (merged with free neighbours)."""
        ranges = sorted([*self._free, (slot.offset, slot.capacity)])
        merged: list[tuple[int, int]] = []
        for start, size in ranges:
            if merged and merged[-1][0] + merged[-1][1] == start:
                merged[-1] = (merged[-1][0], merged[-1][1] + size)
            else:
                merged.append((start, size))
        self._free = merged
        self.used -= slot.capacity
        slot.capacity = slot.length = 0

    @property
    def max_slot(self) -> int:
        """The largest slot this pool could ever hand out (all of it)."""
        return self.tokens

    def largest_free(self) -> int:
        return max((size for _, size in self._free), default=0)
