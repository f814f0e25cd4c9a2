"""StepRunner: what a `BatchEngine` needs from a model runtime — a pool of KV slots and `run`, one
forward over the feeds of a step. The torch runner (`torch_runner.py`, ragged SDPA over a KV pool)
serves the target and torch drafts; the llama.cpp runner (`llamacpp_runner.py`, one context with a
sequence per slot) serves llama.cpp drafts. A runner neither schedules nor admits (the engine
does) and knows nothing of sessions, rules or sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from edgespec.models.kv_pool import Slot


@dataclass(frozen=True)
class StepFeed:
    """One session's part of a step: `ids` fed at positions slot.length..; logits (and post-norm
    hidden states when `hidden`) wanted for the last `rows` of them (0: none, e.g. a prompt chunk)."""

    slot: Slot
    ids: list[int]
    rows: int
    hidden: bool


StepOut = tuple[torch.Tensor | None, torch.Tensor | None]   # ([rows, V] float32 logits, [rows, d] hidden)


class SlotPool(Protocol):
    """KV slots the engine hands to sessions (`kv_pool.KVPool` is one)."""

    tokens: int      # positions in all slots together
    used: int        # positions reserved by live slots
    max_slot: int    # the largest slot it can ever hand out

    def allocate(self, capacity: int) -> Slot | None: ...
    def free(self, slot: Slot) -> None: ...
    def largest_free(self) -> int: ...


@runtime_checkable
class StepRunner(Protocol):
    """A model runtime driven by a `BatchEngine`; `run` is called on the engine's model thread only
    and must not change `slot.length` (the engine advances it after the step)."""

    pool: SlotPool

    def run(self, feeds: list[StepFeed]) -> list[StepOut]: ...
    def close(self) -> None: ...
