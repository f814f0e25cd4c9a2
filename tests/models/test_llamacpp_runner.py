"""The llama.cpp draft runner (smollm2's Q8_0 GGUF) under the batch engine: sessions sharing one
`llama_decode` each get exactly the logits and hidden states of a private context fed the same
tokens, and one session's rollback never changes another's. (llama.cpp is not batch-invariant
across decode shapes — a prompt fed with others' prompts, or in one 64+-token decode — so q can
move slightly with the batch; the drafter samples from the q it computed, so the output law never
does.) The batch-or-serial choice follows the runner's measured costs; a slot larger than one
sequence is refused naming the limit, and so is a session when every sequence is taken."""

from __future__ import annotations

import asyncio

import pytest
import torch

from edgespec.models.batch_engine import BatchEngine
from edgespec.models.draft_runtime import draft_gguf
from edgespec.models.engine_config import EngineConfig
from edgespec.models.kv_pool import KVPoolExhausted, Slot
from edgespec.models.llamacpp import LlamaCppModel
from edgespec.models.llamacpp_runner import LlamaCppRunner
from edgespec.models.step_runner import StepFeed

PROMPTS = [[100 + (7 * j + s) % 900 for j in range(20 + 9 * s)] for s in range(6)]


@pytest.fixture(scope="module")
def model():
    loaded = LlamaCppModel(draft_gguf("smollm2"), 1)
    yield loaded
    loaded.close()


def _private(model, feeds: list[list[int]], hidden: bool = False):
    """Logits (and hidden states) of the last feed, feeding `feeds` one after another into a
    private context (fed the same way: llama.cpp is not batch-invariant across a 64-token feed)."""
    seq = model.sequence(feeds[0][:1], sum(map(len, feeds)) + 8, hidden)
    try:
        for ids in feeds:
            out = seq.feed(ids, hidden=hidden)
        return out.logits, out.hidden
    finally:
        seq.close()


async def test_shared_decodes_equal_private_contexts_and_rollback_is_isolated(model):
    config = EngineConfig(kv_cache_tokens=4096)
    runner = LlamaCppRunner(model, config, 8)
    runner.costs = {1: 6.0, 2: 8.0, 4: 10.0, 8: 12.0}      # batching always pays: every step is one decode
    engine = BatchEngine(runner, config)
    try:
        slots = [await engine.reserve(200) for _ in PROMPTS]
        for slot, prompt in zip(slots, PROMPTS):            # prompts fed alone, as a private context is
            await engine.feed(slot, prompt)
        news = [[11 + i, 500 + i] for i in range(len(PROMPTS))]
        outs = await asyncio.gather(*(engine.feed(s, n, rows=2, hidden=True) for s, n in zip(slots, news)))
        assert engine.steps[-1].sessions == len(PROMPTS) and engine.steps[-1].tokens == 12
        for prompt, new, out in zip(PROMPTS, news, outs):
            logits, hidden = _private(model, [prompt, new], hidden=True)
            assert torch.equal(out.logits, logits) and torch.equal(out.hidden, hidden)
        # session 0 rolls back one token and feeds three in the same decode as session 1's next token
        slots[0].rollback(len(PROMPTS[0]) + 1)
        a, b = await asyncio.gather(engine.feed(slots[0], [77, 78, 79], rows=3), engine.feed(slots[1], [5], rows=1))
        assert engine.steps[-1].sessions == 2
        assert torch.equal(a.logits, _private(model, [PROMPTS[0], news[0][:1] + [77, 78, 79]])[0][-3:])
        assert torch.equal(b.logits, _private(model, [PROMPTS[1], news[1], [5]])[0])
        for slot in slots:
            engine.release(slot)
        assert engine.pool.used == 0 and engine.sessions == 0
    finally:
        engine.close()


async def test_a_slot_beyond_one_sequence_is_refused_naming_the_limit(model):
    config = EngineConfig(kv_cache_tokens=2048, admission_wait_s=0.1)
    engine = BatchEngine(LlamaCppRunner(model, config, 4), config)
    try:
        per_sequence = engine.pool.max_slot
        assert per_sequence * 4 == engine.pool.tokens >= 2048
        with pytest.raises(KVPoolExhausted, match=f"needs {per_sequence + 1} .*holds at most {per_sequence}"):
            await engine.reserve(per_sequence + 1)
        held = [await engine.reserve(10) for _ in range(4)]
        with pytest.raises(KVPoolExhausted, match="4 live sessions"):  # every sequence taken
            await engine.reserve(10)
        for slot in held:
            engine.release(slot)
    finally:
        engine.close()


def test_batching_follows_the_measured_costs(model):
    runner = LlamaCppRunner(model, EngineConfig(kv_cache_tokens=1024), 4)
    try:
        assert set(runner.costs) == {1, 2, 4} and all(c > 0 for c in runner.costs.values())
        one = [StepFeed(Slot(i, 100), [1], 1, False) for i in range(4)]
        runner.costs = {1: 6.0, 2: 25.0, 4: 37.0}      # llama.cpp's CPU shape: small batches cost more
        assert not runner.batch_pays(one[:2]) and not runner.batch_pays(one)
        runner.costs = {1: 6.0, 2: 8.0, 4: 10.0}       # a backend where batching pays at once
        assert runner.batch_pays(one[:2]) and runner.batch_pays(one)
        assert runner.cost(8) == pytest.approx(14.0)   # extrapolated along the last segment
    finally:
        runner.close()


async def test_a_step_run_one_feed_after_another_mixes_prompt_chunks_and_hidden_states(model):
    config = EngineConfig(kv_cache_tokens=2048)
    runner = LlamaCppRunner(model, config, 4)
    runner.costs = {1: 6.0, 2: 25.0, 4: 37.0}       # batching never pays: the step runs feed by feed
    engine = BatchEngine(runner, config)
    try:
        a, b = await engine.reserve(200), await engine.reserve(200)
        await engine.feed(a, PROMPTS[0])
        prompt_chunk, block = await asyncio.gather(engine.feed(b, PROMPTS[1]),
                                                   engine.feed(a, [7, 8], rows=2, hidden=True))
        assert engine.steps[-1].sessions == 2
        assert prompt_chunk.logits is None and prompt_chunk.hidden is None
        logits, hidden = _private(model, [PROMPTS[0], [7, 8]], hidden=True)
        assert torch.equal(block.logits, logits) and torch.equal(block.hidden, hidden)
        assert block.hidden.shape == (2, model.hidden_size)
    finally:
        engine.close()
