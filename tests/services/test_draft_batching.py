"""The draft service batching its sessions (`edgespec draft --batch`), over real gRPC servers
(tiny preset, torch runner): concurrent generations with mixed prompts, k, policies, proactive
drafting and cancellations share draft engine steps, every greedy output still equals target-only
greedy decoding, and the draft's KV pool is back to 0 with no live engine session once the streams
end (also after cancellations)."""

from __future__ import annotations

import asyncio

from edgespec.bench.baselines import target_only
from edgespec.models.engine_config import EngineConfig
from edgespec_client import AsyncClient

PROMPTS = ["hi", "hello there", "the quick brown fox jumps over the lazy dog", "1 2 3 4",
           "speculative decoding on the edge, verified on a server far away"]
POLICIES = [dict(k=1), dict(k=4), dict(k=8), dict(draft_length="heuristic", k=2),
            dict(draft_length="adaedl", k_max=6), dict(draft_length="server"), dict(k=3, proactive=True)]
N = 24


def _draft_used(stack) -> float:
    metrics = stack.draft_server.drafter.telemetry.metrics
    return metrics.registry.get_sample_value("edgespec_kv_cache_used_tokens", {"service": "draft"})


async def _generate(client: AsyncClient, prompt: str, cancel: bool, **options):
    stream = client.stream(prompt, max_new_tokens=N, **options)
    async for _ in stream:
        if cancel:
            await stream.aclose()
            return None
    return stream.result


async def test_concurrent_sessions_share_draft_steps_and_stay_lossless(stack_factory, tiny_target):
    stack = await stack_factory(draft_overrides={"engine": EngineConfig(kv_cache_tokens=8192)})
    cases = [(PROMPTS[i % len(PROMPTS)], i in (5, 11), POLICIES[i % len(POLICIES)]) for i in range(14)]
    async with AsyncClient(stack.draft_address, timeout=120.0) as client:
        results = await asyncio.gather(*(_generate(client, p, c, **o) for p, c, o in cases))
    engine = stack.draft_server.engine
    steps = engine.steps
    assert max(s.sessions for s in steps) >= 2                      # draft forwards were shared
    for (prompt, cancel, _), result in zip(cases, results):
        if cancel:
            continue
        assert list(result.token_ids) == target_only(
            tiny_target.model, list(result.prompt_token_ids), N, tiny_target.eos_token_ids).token_ids
    for _ in range(100):                                             # cancelled streams close shortly after
        if _draft_used(stack) == 0:
            break
        await asyncio.sleep(0.05)
    assert _draft_used(stack) == 0 and engine.sessions == 0

