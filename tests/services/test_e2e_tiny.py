"""End to end over real gRPC servers (tiny preset): greedy parity with target-only decoding, KV
rollback (target forward passes = 1 + rounds), sampling, and concurrent session isolation."""

from __future__ import annotations

import asyncio

import pytest

from edgespec.bench.baselines import target_only

PROMPTS = ["hello there", "the quick brown fox", "1 2 3 4", "speculative decoding"]


def _reference(model, prompt_ids, n):
    return target_only(model.model, list(prompt_ids), n, model.eos_token_ids).token_ids


@pytest.mark.parametrize("k", [1, 3, 8])
async def test_exact_equals_target_greedy(client, tiny_target, k):
    for prompt in PROMPTS:
        result = await client.generate(prompt, max_new_tokens=40, k=k)
        assert result.acceptance == "exact" and result.lossless
        assert list(result.token_ids) == _reference(tiny_target, result.prompt_token_ids, 40)
        stats = result.stats
        assert stats.target_forward_passes == 1 + stats.rounds  # one prefill, one pass per round
        assert stats.generated_tokens == len(result.token_ids)
        assert stats.drafted_tokens >= stats.accepted_tokens


async def test_speculation_actually_accepts_drafts(client):
    result = await client.generate(PROMPTS[0], max_new_tokens=60, k=4)
    s = result.stats
    assert 0 < s.accepted_tokens < s.drafted_tokens  # a real, different drafter
    assert s.rounds < len(result.token_ids)           # fewer target passes than tokens
    assert s.mean_accepted_length == pytest.approx((s.accepted_tokens + s.rounds) / s.rounds, rel=1e-5)
    assert sum(s.per_position_accepted) == s.accepted_tokens
    assert s.bytes_up > 0 and s.bytes_down > 0


async def test_rejection_sampling_runs_and_is_seeded(client):
    kwargs = dict(max_new_tokens=30, temperature=0.9, top_k=50, top_p=0.95, seed=123, k=4)
    a = await client.generate(PROMPTS[1], **kwargs)
    b = await client.generate(PROMPTS[1], **kwargs)
    assert a.acceptance == "rejection" and a.lossless
    assert a.token_ids == b.token_ids                       # same seed, same output
    assert a.stats.target_forward_passes == 1 + a.stats.rounds
    c = await client.generate(PROMPTS[1], **{**kwargs, "seed": 124})
    assert c.token_ids != a.token_ids


async def test_streaming_chunks_add_up(client):
    stream = client.stream(PROMPTS[2], max_new_tokens=30, k=3)
    chunks = [chunk async for chunk in stream]
    assert [t for c in chunks for t in c.token_ids] == list(stream.result.token_ids)
    assert "".join(c.text for c in chunks) == stream.result.text
    assert len(chunks) == stream.result.stats.rounds


async def test_concurrent_sessions_are_isolated(client, tiny_target, stack):
    jobs = [client.generate(p, max_new_tokens=30, k=k) for p in PROMPTS for k in (2, 5)]
    results = await asyncio.gather(*jobs)
    for result in results:
        assert list(result.token_ids) == _reference(tiny_target, result.prompt_token_ids, 30)
    assert len(stack.target_servicer.sessions) == 0  # every session freed at stream end
    assert len(stack.draft_server.drafter.sessions) == 0


async def test_ignore_eos_generates_max_new_tokens(client, tiny_target):
    """Past end-of-sequence: the output is target-only greedy with no stop token, cut at the length."""
    prompt_ids = [5, 17, 42, 9, 3]
    stopped = await client.generate(prompt_token_ids=prompt_ids, max_new_tokens=200)
    assert stopped.finish_reason == "stop" and len(stopped.token_ids) < 200   # this prompt meets an eos
    result = await client.generate(prompt_token_ids=prompt_ids, max_new_tokens=200, ignore_eos=True)
    assert result.finish_reason == "length"
    assert list(result.token_ids) == target_only(tiny_target.model, prompt_ids, 200,
                                                 (tiny_target.vocab_size + 1,)).token_ids
