"""The batch engine in process (tiny preset): one ragged forward over many sessions gives each the
logits it gets alone; one session's rollback never touches another's; a long prompt is chunked
and delays others by at most one step; admission waits a bounded time then refuses naming the
limit and the use; an exception in one session's rule stops neither the engine nor the others;
the `rejection` distribution (1e5 draws, TV < 0.01) holds on logits from a shared step."""

from __future__ import annotations

import asyncio
import time

import pytest
import torch

from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.sampling import make_generator, probs_from_logits, sample
from edgespec.core.types import Proposal, SamplingParams, SessionSpec
from edgespec.models.batch_engine import BatchEngine
from edgespec.models.engine_config import EngineConfig
from edgespec.models.kv_pool import KVPoolExhausted
from edgespec.models.kv_sequence import KVSequence
from edgespec.models.local_verifier import LocalVerifier
from edgespec.models.presets import load_model

PROMPTS = [[3, 89, 87, 73, 86, 203, 76, 77, 4, 203, 40, 41], [5, 6, 7], list(range(10, 60)), [100, 101]]
TOL = 1e-4  # float rounding of a differently shaped forward, far below any logit gap that matters


@pytest.fixture(scope="module")
def target():
    return load_model("tiny", "target")


def _alone(model, ids: list[int], rows: int) -> torch.Tensor:
    """Logits of the last `rows` positions of `ids`, one plain HF forward (no engine)."""
    with torch.inference_mode():
        return KVSequence(model, []).feed(ids).logits[-rows:]


async def test_one_step_serves_every_session_its_own_logits(target):
    engine = BatchEngine(target.model, EngineConfig(kv_cache_tokens=1024))
    slots = [await engine.reserve(200) for _ in PROMPTS]
    outs = await asyncio.gather(*(engine.feed(s, p, rows=len(p)) for s, p in zip(slots, PROMPTS)))
    assert [r.sessions for r in engine.steps] == [len(PROMPTS)]        # one forward for all four
    for prompt, out in zip(PROMPTS, outs):
        assert torch.allclose(out.logits, _alone(target.model, prompt, len(prompt)), atol=TOL)
    # ragged second step: 1, 4, 0 and 2 new tokens on top of different lengths
    news = [[11], [12, 13, 14, 15], None, [16, 17]]
    live = [(s, p, n) for s, p, n in zip(slots, PROMPTS, news) if n]
    outs = await asyncio.gather(*(engine.feed(s, n, rows=len(n)) for s, _, n in live))
    assert engine.steps[-1].tokens == 7 and engine.steps[-1].sessions == 3
    for (_, prompt, new), out in zip(live, outs):
        assert torch.allclose(out.logits, _alone(target.model, prompt + new, len(new)), atol=TOL)
    engine.close()


async def test_rollback_in_one_session_never_changes_another(target):
    engine = BatchEngine(target.model, EngineConfig(kv_cache_tokens=1024))
    a, b = await engine.reserve(300), await engine.reserve(300)
    a_ids, b_ids = list(PROMPTS[0]), list(PROMPTS[2])
    await asyncio.gather(engine.feed(a, a_ids), engine.feed(b, b_ids))
    for r in range(6):
        junk = [200 + r, 201, 202, 203, 204]               # A speculates 5 tokens, keeps only 1
        b_new = [30 + r, 31 + r]
        out_a, out_b = await asyncio.gather(engine.feed(a, junk, rows=5), engine.feed(b, b_new, rows=2))
        assert engine.steps[-1].sessions == 2               # they shared the step
        a.rollback(len(a_ids) + 1)
        a_ids.append(junk[0])
        b_ids.extend(b_new)
        assert torch.allclose(out_b.logits, _alone(target.model, b_ids, 2), atol=TOL)
        assert torch.allclose(out_a.logits, _alone(target.model, a_ids[:-1] + junk, 5), atol=TOL)
    assert a.length == len(a_ids) and b.length == len(b_ids)
    engine.close()


async def test_long_prompt_is_chunked_and_delays_others_by_at_most_one_step(target):
    engine = BatchEngine(target.model, EngineConfig(kv_cache_tokens=2048, max_batch_tokens=64, prefill_chunk=16))
    a, b = await engine.reserve(200), await engine.reserve(600)
    await engine.feed(a, PROMPTS[0])
    long_prompt = [(7 * i) % 250 + 5 for i in range(400)]
    prefill = asyncio.ensure_future(engine.feed(b, long_prompt))
    waits = []
    while not prefill.done():
        out = await engine.feed(a, [40 + len(waits) % 50, 41, 42], rows=3)
        waits.append(out.waited_steps)
    done = await prefill
    assert done.steps >= 400 // 16                          # chunked: one chunk per step
    assert len(waits) >= 10 and max(waits) <= 1, waits      # A never waited behind more than one step
    assert max(r.tokens for r in engine.steps) <= 64
    assert torch.allclose((await engine.feed(b, [9], rows=1)).logits,
                          _alone(target.model, long_prompt + [9], 1), atol=TOL)
    engine.close()


async def test_unbatched_mode_runs_one_session_per_step(target):
    engine = BatchEngine(target.model, EngineConfig(kv_cache_tokens=1024, max_batch_sessions=1))
    slots = [await engine.reserve(100) for _ in PROMPTS]
    await asyncio.gather(*(engine.feed(s, p, rows=1) for s, p in zip(slots, PROMPTS)))
    assert [r.sessions for r in engine.steps] == [1] * len(PROMPTS)
    engine.close()


async def test_admission_waits_then_refuses_naming_the_limit_and_use(target):
    engine = BatchEngine(target.model, EngineConfig(kv_cache_tokens=100, admission_wait_s=0.2))
    held = await engine.reserve(80)
    with pytest.raises(KVPoolExhausted, match=r"kv_cache_tokens: .*needs 50 .*80 of 100 .*1 live session"):
        await engine.reserve(50)
    with pytest.raises(KVPoolExhausted, match="needs 101 .*a session.s slot holds at most 100"):
        await engine.reserve(101)
    waiting = asyncio.ensure_future(engine.reserve(50))     # admitted once room is freed within the wait
    await asyncio.sleep(0.05)
    assert not waiting.done()
    engine.release(held)
    slot = await waiting
    assert engine.pool.used == 50 and slot.capacity == 50
    engine.release(slot)
    assert engine.pool.used == 0 and engine.sessions == 0 and engine.pool.largest_free() == 100
    engine.close()


def _spec(prompt, **kw) -> ResolvedSpec:
    return ResolvedSpec.of(SessionSpec(prompt_ids=tuple(prompt), params=kw.pop("params", SamplingParams()),
                                       acceptance=kw.pop("acceptance", "exact"), max_new_tokens=40, **kw))


class _Exploding:
    def __init__(self, rule):
        self.rule, self.name = rule, rule.name

    def verify(self, *args, **kwargs):
        raise RuntimeError("boom")


async def test_a_failing_rule_stops_neither_the_engine_nor_other_sessions(target):
    engine = BatchEngine(target.model, EngineConfig(kv_cache_tokens=1024))
    bad, good = (LocalVerifier(target.model, target.vocab_size, _spec(p), engine=engine) for p in PROMPTS[:2])
    await asyncio.gather(bad.prefill(), good.prefill())
    bad.rule = _Exploding(bad.rule)
    results = await asyncio.gather(bad.verify(Proposal(round=0, tokens=(5, 6))),
                                   good.verify(Proposal(round=0, tokens=(5, 6))), return_exceptions=True)
    assert isinstance(results[0], RuntimeError) and results[1].round == 0
    verdict = await good.verify(Proposal(round=1, tokens=(), correction=results[1].token)
                                if results[1].token is None else Proposal(round=1, tokens=()))
    assert verdict.round == 1 and good.forward_passes == 3
    await bad.close()
    await good.close()
    assert engine.pool.used == 0
    engine.close()


async def test_rejection_distribution_holds_on_logits_from_a_shared_step(target):
    """1e5 draws of the session's own rule and generator on the p rows its block got from a step
    shared with three other sessions; TV against p from a plain forward of the same context."""
    params = SamplingParams(temperature=1.0, top_k=8, seed=3)
    engine = BatchEngine(target.model, EngineConfig(kv_cache_tokens=2048))
    sessions = [LocalVerifier(target.model, target.vocab_size, _spec(p, params=params, acceptance="rejection"),
                              engine=engine) for p in PROMPTS]
    await asyncio.gather(*(s.prefill() for s in sessions))
    q_logits = _alone(target.model, PROMPTS[1], 1)[0].flip(0)   # a deliberately different draft q
    q = probs_from_logits(q_logits, params)
    blocks = await asyncio.gather(*(s.begin(Proposal(round=0, tokens=(int(q.argmax()),), q_probs=(float(q.max()),)))
                                    for s in sessions))
    assert engine.steps[-1].sessions == len(sessions)
    session, block = sessions[0], blocks[0]
    p = probs_from_logits(_alone(target.model, PROMPTS[0], 1)[0], params).double()
    draft_gen, counts = make_generator(5, 2), torch.zeros(p.numel(), dtype=torch.float64)
    draws = 100_000
    for _ in range(draws):
        x = sample(q, draft_gen)
        outcome = session.rule.verify([x], [float(q[x])], block.logits, params, session.generator)
        first = x if outcome.accepted else outcome.token
        if first is None:
            first = session.rule.correct(outcome.residual_p, q, draft_gen)
        counts[first] += 1
    assert 0.5 * (q.double() - p).abs().sum().item() > 0.2, "draft must differ from target for the test to bite"
    tv = 0.5 * (counts / draws - p).abs().sum().item()
    assert tv < 0.01, f"TV(committed, p) = {tv:.4f}"
    for s in sessions:
        await s.close()
    engine.close()


@pytest.mark.parametrize("gather_ms", [0.0, 50.0])
async def test_a_loaded_engine_keeps_its_sessions_in_one_step(target, monkeypatch, gather_ms):
    """Sessions that need a moment to turn a result into their next work (rule, network) rejoin
    the next step when the engine gathers; without gathering they split into half-batches."""
    engine = BatchEngine(target.model, EngineConfig(kv_cache_tokens=1024, gather_ms=gather_ms))
    step = engine._step
    monkeypatch.setattr(engine, "_step", lambda batch: (time.sleep(0.05), step(batch))[1])  # a slow forward

    async def session(slot, prompt):
        await engine.feed(slot, prompt)
        for r in range(4):
            await asyncio.sleep(0.001 * (1 + slot.offset % 3))      # each turns its result around a bit
            await engine.feed(slot, [20 + r], rows=1)
    slots = [await engine.reserve(100) for _ in range(3)]
    await asyncio.gather(*(session(s, p) for s, p in zip(slots, PROMPTS)))
    sizes = [r.sessions for r in engine.steps]
    if gather_ms:
        assert sizes == [3] * 5, sizes
    else:
        assert max(sizes[1:]) < 3, sizes                             # the split the gathering prevents
    engine.close()


def test_pool_sized_from_a_gpu_memory_fraction(target, monkeypatch):
    """--kv-cache-memory-fraction: free GPU memory x fraction / KV bytes per position (the CUDA
    query is stubbed: no GPU here); on CPU it is refused, naming the flag's field."""
    from edgespec.models.kv_pool import bytes_per_token, pool_tokens
    config, dtype = target.model.config, next(target.model.parameters()).dtype
    per = bytes_per_token(config, dtype)
    assert per == 2 * config.num_hidden_layers * config.num_key_value_heads * \
        (config.hidden_size // config.num_attention_heads) * 4   # fp32 keys and values
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000 * per * 10, 80 << 30))
    assert pool_tokens(config, dtype, "cuda:0", 16384, 0.25) == 2500
    assert pool_tokens(config, dtype, "cpu", 16384, None) == 16384
    with pytest.raises(ValueError, match="^kv_cache_memory_fraction: .* on cpu"):
        pool_tokens(config, dtype, "cpu", 16384, 0.5)
    with pytest.raises(ValueError, match="kv_cache_memory_fraction must be in"):
        EngineConfig(kv_cache_memory_fraction=1.5)
