"""The target serving a fleet, over real gRPC servers (tiny preset): 16 concurrent generations
with mixed prompt lengths, k, policies, rules, server-only mode and cancellations share engine
steps and still give exactly the output each gives alone (target-only greedy for the lossless
ones), with forward passes = 1 + rounds; a full KV pool refuses after a bounded wait with
RESOURCE_EXHAUSTED naming the limit; the pool gauge returns to 0 after stream end, disconnect
mid-step and idle TTL; bad input from one session fails that session only. The first test runs
again with the draft service batching its sessions too (`edgespec draft --batch`)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from edgespec.bench.baselines import target_only
from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.types import Proposal, SamplingParams, SessionSpec
from edgespec.models.engine_config import EngineConfig
from edgespec.rpc.remote import RemoteVerifier
from edgespec_client import AsyncClient

PROMPTS = ["hi", "hello there", "the quick brown fox jumps over the lazy dog", "1 2 3 4",
           "speculative decoding on the edge, verified on a server far away"]
LOSSY = {"fly": dict(window=2, entropy_threshold=0.0),
         "dropmatch": dict(dropout_p=0.5, dropout_paths=16, dropout_criterion="naive"),
         "semantic": dict(semantic_threshold=0.2, semantic_threshold_min=0.0)}
N = 24


def _cases() -> list[dict]:
    """16 requests: lossless greedy (fixed k, adaptive policies, server-only) and lossy rules."""
    policies = [dict(k=1), dict(k=4), dict(k=8), dict(draft_length="heuristic", k=2),
                dict(draft_length="adaedl", k_max=6), dict(draft_length="server"), dict(k=3, proactive=True)]
    cases = [dict(prompt=PROMPTS[i % len(PROMPTS)], **policies[i % len(policies)]) for i in range(10)]
    cases += [dict(prompt=PROMPTS[i % len(PROMPTS)], k=5, acceptance=rule, acceptance_params=LOSSY[rule])
              for i, rule in enumerate(sorted(LOSSY))]
    cases += [dict(prompt=PROMPTS[1], temperature=0.8, seed=7, k=4)]   # rejection, seeded
    cases += [dict(prompt=PROMPTS[i], k=4, cancel=True) for i in (2, 4)]
    assert len(cases) == 16
    return cases


def _used(stack, service: str = "target") -> float:
    telemetry = stack.target_servicer.telemetry if service == "target" else stack.draft_server.drafter.telemetry
    return telemetry.metrics.registry.get_sample_value("edgespec_kv_cache_used_tokens", {"service": service})


async def _generate(client: AsyncClient, case: dict):
    case = dict(case)
    prompt, cancel = case.pop("prompt"), case.pop("cancel", False)
    stream = client.stream(prompt, max_new_tokens=N, **case)
    async for _ in stream:
        if cancel:
            await stream.aclose()
            return None
    return stream.result


async def _until(predicate, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("draft_batch", [False, True], ids=["private-drafts", "draft-batch"])
async def test_sixteen_concurrent_sessions_match_their_alone_outputs(stack_factory, tiny_target, draft_batch):
    """Also with the draft service batching its sessions (`edgespec draft --batch`): then the
    draft's steps are shared too, and its KV pool is back to 0 once every stream ends."""
    draft_engine = {"engine": EngineConfig(kv_cache_tokens=8192)} if draft_batch else {}
    stack = await stack_factory(draft_overrides=draft_engine)
    cases = _cases()
    async with AsyncClient(stack.draft_address, timeout=120.0) as client:
        batched = await asyncio.gather(*(_generate(client, c) for c in cases))
        engine = stack.target_servicer.engine
        assert max(r.sessions for r in engine.steps) >= 2     # they shared forwards (tiny steps are ~1 ms)
        for case, result in zip(cases, batched):
            if result is None:
                continue
            s = result.stats
            assert s.target_forward_passes == 1 + s.rounds + s.server_tokens   # one pass per round / token
            if result.lossless and not case.get("temperature"):
                assert list(result.token_ids) == target_only(
                    tiny_target.model, list(result.prompt_token_ids), N, tiny_target.eos_token_ids).token_ids
            else:
                alone = await _generate(client, case)   # the same request with nobody else on the server
                assert result.token_ids == alone.token_ids, case
    await _until(lambda: _used(stack) == 0)
    assert _used(stack) == 0 and engine.pool.used == 0 and engine.sessions == 0
    if draft_batch:
        drafts = stack.draft_server.engine
        assert max(r.sessions for r in drafts.steps) >= 2           # draft forwards were shared as well
        await _until(lambda: _used(stack, "draft") == 0)
        assert _used(stack, "draft") == 0 and drafts.pool.used == 0 and drafts.sessions == 0


def _spec(max_new_tokens: int = 16, prompt=(76, 73, 80, 80)) -> ResolvedSpec:
    return ResolvedSpec.of(SessionSpec(prompt_ids=tuple(prompt), params=SamplingParams(), acceptance="exact",
                                       max_new_tokens=max_new_tokens))


async def test_full_pool_refuses_after_a_bounded_wait_then_frees(stack_factory):
    stack = await stack_factory({"engine": EngineConfig(kv_cache_tokens=60, admission_wait_s=0.3)})
    async with grpc.aio.insecure_channel(stack.target_address) as channel:
        held = await RemoteVerifier.open(channel, _spec(40))           # 4 + 40 + 1 = 45 of 60 positions
        assert _used(stack) == 45
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await RemoteVerifier.open(channel, _spec(20))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "kv_cache_tokens" in info.value.details() and "45 of 60" in info.value.details()
        waiting = asyncio.ensure_future(RemoteVerifier.open(channel, _spec(20)))
        await asyncio.sleep(0.1)
        await held.close()                                            # room within the wait: admitted
        admitted = await waiting
        await _until(lambda: _used(stack) == 25)
        assert _used(stack) == 25
        await admitted.close()
    await _until(lambda: _used(stack) == 0)
    assert _used(stack) == 0


async def test_pool_is_freed_on_disconnect_mid_step_and_on_idle_ttl(stack_factory):
    stack = await stack_factory({"idle_ttl_s": 0.3})
    async with grpc.aio.insecure_channel(stack.target_address) as channel:
        verifiers = [await RemoteVerifier.open(channel, _spec(30)) for _ in range(3)]
        assert _used(stack) == 3 * 35
        inflight = asyncio.ensure_future(verifiers[0].verify(Proposal(round=0, tokens=(5, 6, 7))))
        await asyncio.sleep(0)                                          # the block is on its way
        verifiers[0].session.call.cancel()                              # the device drops mid-step
        with pytest.raises((asyncio.CancelledError, grpc.aio.AioRpcError, ConnectionError)):
            await inflight
        await verifiers[1].verify(Proposal(round=0, tokens=(5,)))     # the others carry on
        await _until(lambda: _used(stack) == 0)                        # 1 and 2 idle past the TTL
        assert _used(stack) == 0 and len(stack.target_servicer.sessions) == 0
        for v in verifiers:
            await v.close()


@pytest.mark.parametrize("bad, code", [
    (Proposal(round=3, tokens=(5,)), grpc.StatusCode.FAILED_PRECONDITION),
    (Proposal(round=0, tokens=(5, 999)), grpc.StatusCode.INVALID_ARGUMENT),
], ids=["wrong-round", "out-of-vocab"])
async def test_bad_input_fails_that_session_only(stack, bad, code):
    async with grpc.aio.insecure_channel(stack.target_address) as channel:
        good = await RemoteVerifier.open(channel, _spec(30))
        victim = await RemoteVerifier.open(channel, _spec(30))
        results = await asyncio.gather(victim.verify(bad), good.verify(Proposal(round=0, tokens=(5, 6))),
                                       return_exceptions=True)
        assert isinstance(results[0], grpc.aio.AioRpcError) and results[0].code() == code
        first = results[1]
        follow = Proposal(round=1, tokens=(7,), correction=None if first.token is not None else 8)
        assert (await good.verify(follow)).round == 1
        await good.close()
        await victim.close()
