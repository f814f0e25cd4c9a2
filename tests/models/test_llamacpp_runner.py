"""The llama.cpp draft runner (smollm2's Q8_0 GGUF) under the batch engine: sessions sharing one
`llama_decode` get the logits of a private context fed the same tokens up to llama.cpp's own
shape noise (its logits move with how a decode is batched, ~0.6 at most here; the drafter samples
from the q it computed, so the output law never moves), and exactly the same logits whatever
another session holds or rolls back. The batch-or-serial choice follows the runner's measured
costs; admission is bounded by the positions and by the sequences, refusing naming the limit; a
released sequence's cells are gone before its id serves another session."""

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
LOGIT_NOISE = 1.0   # measured up to 0.61 between a shared decode and a private one (and 0.60 within
                    # one private context between feeding 67 tokens at once and 65 + 2)
NEAR_TIE = 0.25     # top-2 logit gap below which llama.cpp's shape noise may swap the argmax


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


def _agree(batched: torch.Tensor, private: torch.Tensor) -> None:
    """Batched draft logits within llama.cpp's own shape noise of a private context's: no logit off
    by LOGIT_NOISE, and the same argmax wherever the private top-2 gap is not a near tie."""
    assert (batched - private).abs().max() < LOGIT_NOISE
    top = private.topk(2, dim=-1).values
    clear = top[:, 0] - top[:, 1] > NEAR_TIE
    assert torch.equal(batched.argmax(-1)[clear], private.argmax(-1)[clear])


async def test_shared_decodes_agree_with_private_contexts(model):
    config = EngineConfig(kv_cache_tokens=4096)
    runner = LlamaCppRunner(model, config, 8)
    runner.costs = {1: 6.0, 2: 8.0, 4: 10.0, 8: 12.0}      # batching always pays: every step is one decode
    engine = BatchEngine(runner, config)
    try:
        slots = [await engine.reserve(200) for _ in PROMPTS]
        await asyncio.gather(*(engine.feed(s, p) for s, p in zip(slots, PROMPTS)))
        for step in range(4):
            news = [[11 + i + step, 500 + i] for i in range(len(PROMPTS))]
            outs = await asyncio.gather(*(engine.feed(s, n, rows=2, hidden=True) for s, n in zip(slots, news)))
            assert engine.steps[-1].sessions == len(PROMPTS) and engine.steps[-1].tokens == 12
            for prompt, new, out in zip(PROMPTS, news, outs):
                logits, hidden = _private(model, [prompt, new], hidden=True)
                _agree(out.logits, logits)
                assert out.hidden.shape == hidden.shape == (2, model.hidden_size)
            for slot in slots:
                slot.rollback(slot.length - 2)
        for slot in slots:
            engine.release(slot)
        assert engine.pool.used == 0 and engine.sessions == 0
    finally:
        engine.close()


async def test_one_sessions_rollback_and_content_never_change_anothers_logits(model):
    """Same step shapes, different content in session 0 (rolled back, refed other tokens):
    session 1's logits are bit-identical — masked cells contribute exactly nothing."""
    config = EngineConfig(kv_cache_tokens=4096)
    runner = LlamaCppRunner(model, config, 4)
    runner.costs = {1: 6.0, 2: 8.0, 4: 10.0}
    engine = BatchEngine(runner, config)
    try:
        a, b = await engine.reserve(200), await engine.reserve(200)
        await asyncio.gather(engine.feed(a, PROMPTS[0]), engine.feed(b, PROMPTS[1]))
        seen = []
        for tokens in ([77, 78, 79], [5, 900, 31]):
            a.rollback(len(PROMPTS[0]))
            b.rollback(len(PROMPTS[1]))
            _, out = await asyncio.gather(engine.feed(a, tokens, rows=3), engine.feed(b, [42], rows=1))
            assert engine.steps[-1].sessions == 2
            seen.append(out.logits)
        assert torch.equal(seen[0], seen[1])
        _agree(seen[0], _private(model, [PROMPTS[1], [42]])[0])
    finally:
        engine.close()


async def test_admission_is_bounded_by_the_positions_and_the_sequences(model):
    config = EngineConfig(kv_cache_tokens=1000, admission_wait_s=0.1)
    engine = BatchEngine(LlamaCppRunner(model, config, 3), config)
    try:
        with pytest.raises(KVPoolExhausted, match="needs 1001 .*holds at most 1000"):
            await engine.reserve(1001)
        big = await engine.reserve(900)
        with pytest.raises(KVPoolExhausted, match="needs 200 .*900 of 1000 .*1 live session"):
            await engine.reserve(200)                     # positions run out first
        engine.release(big)
        held = [await engine.reserve(10) for _ in range(3)]
        with pytest.raises(KVPoolExhausted, match="30 of 1000 .*3 live sessions"):
            await engine.reserve(10)                      # then sequences
        for slot in held:
            engine.release(slot)
        assert engine.pool.used == 0
    finally:
        engine.close()


async def test_a_released_sequence_is_cleared_before_its_id_serves_another_session(model):
    config = EngineConfig(kv_cache_tokens=1000)
    engine = BatchEngine(LlamaCppRunner(model, config, 1), config)   # one sequence: ids are reused
    try:
        first = await engine.reserve(200)
        seq = first.offset
        await engine.feed(first, PROMPTS[2])
        engine.release(first)
        second = await engine.reserve(200)
        assert second.offset == seq                                    # the same llama.cpp sequence
        out = await engine.feed(second, PROMPTS[0], rows=1)
        assert torch.equal(out.logits, _private(model, [PROMPTS[0]])[0][-1:])
        engine.release(second)
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
        _agree(block.logits, logits)
        assert block.hidden.shape == hidden.shape == (2, model.hidden_size)
    finally:
        engine.close()
