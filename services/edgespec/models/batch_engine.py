"""BatchEngine: owns a model and its KV pool, and runs ONE forward per step over the work every
live session has queued (iteration-level / continuous batching). Sessions reserve a pool slot
(bounded wait, then `KVPoolExhausted` naming the limit and the use), then `feed` token ids on top
of their slot and get back logits (and post-norm hidden states) for the rows they ask for.

Scheduling: alone, a feed runs at once; under load each step takes the queue in FIFO order up to
`max_batch_tokens` tokens and `max_batch_sessions` sessions. Between two steps the engine waits at
most `gather_ms` (and `gather_share` of the last step) for the sessions the last step served to queue their
next work, so that a loaded engine does not split its sessions into two alternating half-batches. Prompts are fed in chunks of at most
`prefill_chunk` tokens and keep their queue place, so a long prompt delays other sessions by at
most one step and nothing starves (the head of the queue always runs). Per-session state (rule,
generator, rounds) is NOT here: the engine sees token ids and slots only. Forwards run on the
engine's own model thread; the asyncio side (queue, slots) lives on one event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from edgespec.models.engine_config import EngineConfig
from edgespec.models.kv_pool import KVPoolExhausted, Slot
from edgespec.models.step_runner import StepFeed, StepRunner
from edgespec.models.torch_runner import TorchRunner


@dataclass(frozen=True)
class FeedOut:
    """A feed's result: the last `rows` positions' logits (and hidden states), and its timing."""

    logits: torch.Tensor | None         # [rows, V] float32
    hidden: torch.Tensor | None         # [rows, d] post-norm, when asked
    queue_ms: float                     # submission -> its (first) step started
    compute_ms: float                   # the forward(s) it rode in
    steps: int                          # steps it took (> 1 only for a chunked prompt)
    waited_steps: int                   # steps that started after it was queued, before its own


@dataclass(frozen=True)
class StepRecord:
    """One engine step, for benchmarks and tests."""

    index: int
    sessions: int
    tokens: int
    ms: float


@dataclass
class _Work:
    slot: Slot
    ids: list[int]
    rows: int
    hidden: bool
    chunked: bool
    future: asyncio.Future
    submitted: float = field(default_factory=time.perf_counter)
    queued_at_step: int = 0
    first_step: int | None = None
    done: int = 0
    started: float | None = None
    compute_ms: float = 0.0
    steps: int = 0


class BatchEngine:
    """Continuous batching of forwards over one model runtime and its KV slots: a torch module
    (wrapped in a `TorchRunner`) or any `StepRunner`."""

    def __init__(self, model: torch.nn.Module | StepRunner, config: EngineConfig = EngineConfig(),
                 on_step: Callable[[StepRecord], None] | None = None) -> None:
        self.config, self.on_step = config, on_step
        self.runner: StepRunner = model if isinstance(model, StepRunner) else TorchRunner(model, config)
        self.pool = self.runner.pool
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-model")
        self.closed = False
        self.queue: list[_Work] = []
        self.steps: deque[StepRecord] = deque(maxlen=4096)   # the latest steps (benchmarks, tests)
        self.step_count = 0
        self.cpu_s = 0.0      # CPU time of the model thread in steps (one torch thread: the forwards' cost)
        self.sessions = 0
        self._driver: asyncio.Task | None = None
        self._arrived: asyncio.Event | None = None
        self._room: asyncio.Condition | None = None

    # --- KV admission ---
    async def reserve(self, tokens: int) -> Slot:
        """A slot for `tokens` positions; waits up to `admission_wait_s` for room, then raises."""
        if tokens > self.pool.max_slot:
            raise KVPoolExhausted(self._full(tokens, f"a session's slot holds at most {self.pool.max_slot}"))
        slot = self.pool.allocate(tokens)
        if slot is None:
            room = self._condition()
            async with room:
                try:
                    await asyncio.wait_for(room.wait_for(lambda: self.pool.largest_free() >= tokens),
                                           self.config.admission_wait_s)
                except TimeoutError:
                    raise KVPoolExhausted(self._full(tokens, f"waited {self.config.admission_wait_s:g}s")) from None
                slot = self.pool.allocate(tokens)
        self.sessions += 1
        return slot

    def release(self, slot: Slot) -> None:
        """Free a slot now (drops its queued work); waiting admissions retry."""
        if not slot.capacity:
            return
        for work in [w for w in self.queue if w.slot is slot]:
            self.queue.remove(work)
            work.future.cancel()
        self.pool.free(slot)
        self.sessions -= 1
        room = self._condition()
        asyncio.get_running_loop().create_task(self._notify(room))

    def _full(self, tokens: int, why: str) -> str:
        return (f"kv_cache_tokens: a session needs {tokens} KV positions; {self.pool.used} of "
                f"{self.pool.tokens} are reserved by {self.sessions} live sessions ({why})")

    def _condition(self) -> asyncio.Condition:
        if self._room is None:
            self._room = asyncio.Condition()
        return self._room

    @staticmethod
    async def _notify(room: asyncio.Condition) -> None:
        async with room:
            room.notify_all()

    # --- work ---
    async def feed(self, slot: Slot, ids: list[int], rows: int = 0, hidden: bool = False) -> FeedOut:
        """Feed `ids` on top of `slot`'s cached positions; logits for the last `rows` of them."""
        if not slot.capacity:
            raise ValueError("slot: the session's KV slot was already released")
        if slot.length + len(ids) > slot.capacity:
            raise ValueError(f"token_ids: {slot.length + len(ids)} KV positions exceed the session's "
                             f"reservation of {slot.capacity}")
        if not ids or rows > len(ids):
            raise ValueError(f"feed: {len(ids)} ids cannot give {rows} rows")
        work = _Work(slot, list(ids), rows, hidden, chunked=rows == 0,
                     future=asyncio.get_running_loop().create_future(), queued_at_step=self.step_count)
        self.queue.append(work)
        if self._arrived is not None:
            self._arrived.set()
        if self._driver is None or self._driver.done():
            self._driver = asyncio.get_running_loop().create_task(self._drive())
        return await work.future

    def _take(self) -> list[tuple[_Work, int]]:
        """This step's share of the queue: FIFO, within the token and session budgets."""
        budget, batch, slots = self.config.max_batch_tokens, [], set()
        for work in self.queue:
            if len(batch) == self.config.max_batch_sessions or id(work.slot) in slots:
                break
            left = len(work.ids) - work.done
            n = min(left, self.config.prefill_chunk, budget) if work.chunked else left
            if n < 1 or n > budget:
                break
            batch.append((work, n))
            slots.add(id(work.slot))
            budget -= n
        return batch

    async def _drive(self) -> None:
        loop = asyncio.get_running_loop()
        while self.queue:
            batch = self._take()
            started = time.perf_counter()
            for work, _ in batch:
                work.started = work.started or started
                work.first_step = self.step_count if work.first_step is None else work.first_step
            try:
                outs = await loop.run_in_executor(self.executor, self._step, batch)
            except Exception as exc:  # noqa: BLE001 - a failed step fails its feeds, not the engine
                outs = [exc] * len(batch)
            ms = (time.perf_counter() - started) * 1e3
            record = StepRecord(self.step_count, len(batch), sum(n for _, n in batch), ms)
            self.step_count += 1
            self.steps.append(record)
            if self.on_step is not None:
                self.on_step(record)
            served: list[Slot] = []
            for (work, n), out in zip(batch, outs):
                work.compute_ms += ms
                work.steps += 1
                if isinstance(out, Exception) or work.done == len(work.ids):
                    if work in self.queue:
                        self.queue.remove(work)
                    self._resolve(work, out)
                    served.append(work.slot)
            await self._gather(served, min(self.config.gather_ms, self.config.gather_share * ms) / 1e3)

    async def _gather(self, served: list[Slot], hold_s: float) -> None:
        """Wait up to `hold_s` until every live session served by the last step has queued again."""
        deadline = time.perf_counter() + hold_s
        self._arrived = self._arrived or asyncio.Event()
        while any(slot.capacity and all(w.slot is not slot for w in self.queue) for slot in served):
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    @staticmethod
    def _resolve(work: _Work, out) -> None:
        if work.future.done():
            return
        if isinstance(out, Exception):
            work.future.set_exception(out)
            return
        logits, hidden = out
        queue_ms = ((work.started or work.submitted) - work.submitted) * 1e3
        work.future.set_result(FeedOut(logits, hidden, queue_ms, work.compute_ms, work.steps,
                                       work.first_step - work.queued_at_step))

    def _step(self, batch: list[tuple[_Work, int]]) -> list:
        """One runner step over the batch (model thread); per work: (logits, hidden) or (None, None)."""
        cpu = time.thread_time()
        feeds = []
        for work, n in batch:
            last = work.done + n == len(work.ids)
            feeds.append(StepFeed(work.slot, work.ids[work.done:work.done + n], work.rows if last else 0,
                                  work.hidden))
        outs = self.runner.run(feeds)
        for work, n in batch:
            work.slot.length += n
            work.done += n
        self.cpu_s += time.thread_time() - cpu
        return outs

    def close(self) -> None:
        """Stop the model thread and close the runner (the pool goes with it); idempotent."""
        for work in self.queue:
            work.future.cancel()
        self.queue.clear()
        if not self.closed:
            self.closed = True
            self.executor.submit(self.runner.close)   # on the model thread, after any step in flight
            self.executor.shutdown(wait=True)         # so the model outlives every use of it
