"""Reliability defects of issue 14, each reproduced against real servers (tiny preset) and fixed:
a session doing work is never reaped as idle (server-only generation longer than the idle TTL),
per-caller session limits and a short TTL until the first block, a first-message deadline on
every stream, the Drafter validating commits and its session budget, limits checked at the
orchestrator before any model work, and dead-peer detection by keepalive.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
import time

import grpc
import numpy as np
import pytest

from edgespec.rpc.resume import ResumePolicy
from edgespec.rpc.server import ServerOptions
from edgespec.v1 import common_pb2, draft_pb2, draft_pb2_grpc, target_pb2, target_pb2_grpc
from edgespec_client import AsyncClient, InvalidArgumentError, ResourceExhaustedError, UnavailableError

T = 20.0                       # per-call timeout, seconds
PROMPT = [76, 73, 80, 80]      # "hell" in the tiny tokenizer
VOCAB = 320                    # tiny preset vocabulary


def _open(max_new_tokens: int = 16, **fields) -> target_pb2.VerifierRequest:
    spec = dict(prompt_token_ids=PROMPT, acceptance="exact", max_new_tokens=max_new_tokens)
    return target_pb2.VerifierRequest(open=common_pb2.SessionOpen(**{**spec, **fields}))


async def _until(predicate, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# (2) a session doing work is not idle

async def test_server_only_block_longer_than_the_idle_ttl_completes(stack_factory):
    stack = await stack_factory(target_overrides={"idle_ttl_s": 0.3})
    n = 3000
    async with grpc.aio.insecure_channel(stack.target_address) as channel:
        call = target_pb2_grpc.VerifierStub(channel).Session(timeout=T)
        await call.write(_open(max_new_tokens=n))
        session_id = (await call.read()).opened.session_id
        start = time.monotonic()
        await call.write(target_pb2.VerifierRequest(block=common_pb2.DraftBlock(
            session_id=session_id, round=0, server_tokens=n)))
        rounds = [(await call.read()).verdict.round for _ in range(n)]
        elapsed = time.monotonic() - start
        assert rounds == list(range(n))
        assert elapsed > 1.5, f"the block ran {elapsed:.2f} s: too short to outlast the TTL and the reaper tick"
        await call.done_writing()
        assert await call.read() == grpc.aio.EOF
    await _until(lambda: len(stack.target_servicer.sessions) == 0)


# ---------------------------------------------------------------------------------------------
# (4) the Drafter validates commits; (6) it keeps the session's max_new_tokens

def _draft_open(max_new_tokens: int = 16, **fields) -> draft_pb2.DrafterRequest:
    return draft_pb2.DrafterRequest(open=_open(max_new_tokens, **fields).open)


def _propose(k: int) -> draft_pb2.DrafterRequest:
    return draft_pb2.DrafterRequest(propose=draft_pb2.ProposeRequest(k=k))


def _dense_residual() -> common_pb2.Distribution:
    probs = np.full(VOCAB, 1.0 / VOCAB, dtype="<f4")
    return common_pb2.Distribution(vocab_size=VOCAB, probs=common_pb2.Tensor(
        dtype=common_pb2.DTYPE_FLOAT32, shape=[VOCAB], data=probs.tobytes()))


@pytest.mark.parametrize("case", ["token -1", "token 320", "token 2**31-1", "accepted == k with residual_p"])
async def test_drafter_rejects_a_bad_commit_naming_the_field(stack, case):
    sampling = common_pb2.SamplingParams(temperature=0.8, seed=3) if "residual" in case else None
    acceptance = "rejection" if "residual" in case else "exact"
    async with grpc.aio.insecure_channel(stack.draft_address) as channel:
        call = draft_pb2_grpc.DrafterStub(channel).Session(timeout=T)
        await call.write(_draft_open(acceptance=acceptance, sampling=sampling))
        await call.read()
        await call.write(_propose(2))
        assert len((await call.read()).block.token_ids) == 2
        if "residual" in case:
            verdict, field = common_pb2.Verdict(round=0, accepted=2, residual_p=_dense_residual()), "residual_p"
        else:
            verdict, field = common_pb2.Verdict(round=0, accepted=0, token=eval(case.split()[1])), "token"
        commit = draft_pb2.DrafterRequest(commit=verdict)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call.write(commit)
            await call.read()
            await call.write(_propose(2))       # before the fix, the bad id reached the embedding here
            pytest.fail(f"expected INVALID_ARGUMENT, got {await call.read()}")
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
        assert field in info.value.details() and "Error" not in info.value.details()
    await _until(lambda: len(stack.draft_server.drafter.sessions) == 0)


async def test_drafter_keeps_the_sessions_max_new_tokens(stack):
    async with grpc.aio.insecure_channel(stack.draft_address) as channel:
        call = draft_pb2_grpc.DrafterStub(channel).Session(timeout=T)
        await call.write(_draft_open(max_new_tokens=5))
        await call.read()
        await call.write(_propose(3))
        block = (await call.read()).block
        await call.write(draft_pb2.DrafterRequest(commit=common_pb2.Verdict(
            round=0, accepted=3, token=block.token_ids[0])))
        assert len((await call.read()).committed.token_ids) == 4     # 1 token of the budget left
        await call.write(_propose(3))
        block = (await call.read()).block
        with pytest.raises(grpc.aio.AioRpcError) as info:              # 3 more tokens: past 5
            await call.write(draft_pb2.DrafterRequest(commit=common_pb2.Verdict(
                round=1, accepted=2, token=block.token_ids[0])))
            pytest.fail(f"expected FAILED_PRECONDITION, got {await call.read()}")
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "max_new_tokens" in info.value.details()
    await _until(lambda: len(stack.draft_server.drafter.sessions) == 0)


# ---------------------------------------------------------------------------------------------
# (1) limits are checked at the orchestrator, before any model work

@pytest.fixture
def model_work(monkeypatch):
    """Counts draft prefills and prompt tokenizations (the work an over-long prompt must not cost)."""
    from edgespec.models.local_drafter import LocalDrafter
    from edgespec.orchestrator import request as request_module
    counts = {"prefill": 0, "tokenize": 0}
    prefill, encode = LocalDrafter.prefill, request_module.encode_prompt

    async def counted_prefill(self):
        counts["prefill"] += 1
        return await prefill(self)

    def counted_encode(*args, **kwargs):
        counts["tokenize"] += 1
        return encode(*args, **kwargs)
    monkeypatch.setattr(LocalDrafter, "prefill", counted_prefill)
    monkeypatch.setattr(request_module, "encode_prompt", counted_encode)
    return counts


@pytest.mark.parametrize("case", ["ids over the limit", "text over the character limit",
                                  "text over the token limit", "ids outside the vocabulary"])
async def test_over_limit_prompts_are_refused_before_any_model_work(stack_factory, model_work, case):
    stack = await stack_factory(orchestrator_overrides={"max_prompt_tokens": 64, "max_prompt_chars": 1000})
    prompt, ids, words = {
        "ids over the limit": ("", [7] * 40_000, ("prompt_token_ids", "40000", "64")),
        "text over the character limit": ("a" * 1001, None, ("prompt", "1001", "1000")),
        "text over the token limit": ("ab " * 300, None, ("prompt", "64")),
        "ids outside the vocabulary": ("", [7, VOCAB], ("prompt_token_ids", str(VOCAB))),
    }[case]
    async with AsyncClient(stack.draft_address, timeout=T) as client:
        with pytest.raises(InvalidArgumentError) as info:
            await client.generate(prompt, prompt_token_ids=ids, max_new_tokens=4) if ids else \
                await client.generate(prompt, max_new_tokens=4)
        for word in words:
            assert word in info.value.details, info.value.details
        assert "upstream" not in info.value.details      # the orchestrator refused, not the target
        assert model_work["prefill"] == 0
        assert model_work["tokenize"] == (1 if case == "text over the token limit" else 0)
        assert len(stack.target_servicer.sessions) == 0
        result = await client.generate(prompt_token_ids=PROMPT, max_new_tokens=4)   # still serving
        assert len(result.token_ids) == 4 and model_work["prefill"] == 1


# ---------------------------------------------------------------------------------------------
# (3) idle opens cannot lock everyone out; every stream has a first-message deadline

async def test_idle_opens_are_freed_after_the_short_open_ttl_and_their_streams_end(stack_factory):
    stack = await stack_factory(target_overrides={"max_sessions": 4, "max_sessions_per_caller": 4,
                                                  "open_ttl_s": 0.5})
    async with grpc.aio.insecure_channel(stack.target_address) as channel:
        held = []
        for _ in range(4):                                     # every slot, then silence
            call = target_pb2_grpc.VerifierStub(channel).Session(timeout=T)
            await call.write(_open())
            assert (await call.read()).opened.session_id
            held.append(call)
        async with AsyncClient(stack.draft_address, timeout=T, max_retries=0) as client:
            with pytest.raises(ResourceExhaustedError):
                await client.generate(prompt_token_ids=PROMPT, max_new_tokens=4)
            for call in held:                                  # the idle TTL (300 s) did not apply
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await call.read()
                assert info.value.code() == grpc.StatusCode.NOT_FOUND
                assert "without a message" in info.value.details()
            assert len(stack.target_servicer.sessions) == 0
            result = await client.generate(prompt_token_ids=PROMPT, max_new_tokens=4)
            assert len(result.token_ids) == 4


async def test_one_caller_holds_at_most_its_share_of_the_sessions(stack_factory, monkeypatch):
    from edgespec.rpc import caller
    monkeypatch.setattr(caller, "peer_host", lambda peer: "ip:192.0.2.1")   # as if from another host
    stack = await stack_factory(target_overrides={"max_sessions": 4})         # a caller's share: 2
    async with grpc.aio.insecure_channel(stack.target_address) as channel:
        calls = [target_pb2_grpc.VerifierStub(channel).Session(timeout=T) for _ in range(3)]
        for call in calls[:2]:
            await call.write(_open())
            assert (await call.read()).opened.session_id
        await calls[2].write(_open())
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await calls[2].read()
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "per caller" in info.value.details()
        assert len(stack.target_servicer.sessions) == 2
        for call in calls[:2]:
            call.cancel()
    await _until(lambda: len(stack.target_servicer.sessions) == 0)


SLOW_FIRST = ServerOptions(listen="127.0.0.1:0", grace_s=0.5, keepalive_time_s=1.0, keepalive_timeout_s=1.0,
                           first_message_timeout_s=0.3)


@pytest.mark.parametrize("rpc", ["Verifier.Session", "Drafter.Session", "Orchestrator.Generate"])
async def test_a_call_that_never_sends_its_first_message_ends(stack_factory, rpc):
    stack = await stack_factory(target_overrides={"server": SLOW_FIRST}, draft_overrides={"server": SLOW_FIRST})
    service, method = rpc.split(".")
    address = stack.target_address if service == "Verifier" else stack.draft_address
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.stream_stream(f"/edgespec.v1.{service}/{method}")(timeout=T)   # raw: sends nothing
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call.read()
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "no request message within 0.3 s" in info.value.details()
        half_closed = channel.stream_stream(f"/edgespec.v1.{service}/{method}")(timeout=T)
        await half_closed.done_writing()                       # ends without any message
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await half_closed.read()
        assert info.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
    async with AsyncClient(stack.draft_address, timeout=T) as client:
        assert len((await client.generate(prompt_token_ids=PROMPT, max_new_tokens=4)).token_ids) == 4


# ---------------------------------------------------------------------------------------------
# (5) keepalive detects a dead peer (test keepalive: 1 s pings, 1 s ack timeout; round timeout 60 s)

KEEPALIVE_BOUND_S = 8.0        # 1 s ping + 1 s ack, with room for a loaded 2-core machine
NO_RESUME = ResumePolicy(max_resumes=0)  # these tests time the detection itself, not what resume makes of it


@pytest.fixture
async def endless_linked(tiny_target, tiny_draft):
    """A target and a draft whose orchestrator (no stop tokens) reaches it through a DelayProxy
    (the emulated link, which can be blackholed)."""
    from edgespec.draft.config import DraftConfig
    from edgespec.draft.serve import start_draft
    from edgespec.net.proxy import DelayProxy, parse_address
    from edgespec.orchestrator.config import OrchestratorConfig
    from edgespec.target.config import TargetConfig
    from edgespec.target.serve import start_target, stop_target
    target, servicer = await start_target(TargetConfig(model="tiny", server=SLOW_FIRST), tiny_target)
    proxy = DelayProxy(upstream=parse_address(target.address))
    await proxy.start()
    orch = OrchestratorConfig(target=proxy.address, tokenizer="tiny", server=SLOW_FIRST,
                              resume=NO_RESUME)
    draft = await start_draft(DraftConfig(model="tiny", orchestrator=orch, server=SLOW_FIRST),
                              dataclasses.replace(tiny_draft, eos_token_ids=()))
    yield servicer, draft, proxy
    proxy.blackhole(False)
    await draft.running.stop()
    await draft.shutdown()
    await proxy.stop()
    await stop_target(target, servicer)


async def test_a_blackholed_link_is_detected_by_keepalive(endless_linked):
    servicer, draft, proxy = endless_linked
    async with AsyncClient(draft.running.address, timeout=T, max_retries=0) as client:
        stream = client.stream(prompt_token_ids=PROMPT, max_new_tokens=4000)
        assert (await anext(stream)).token_ids
        proxy.blackhole(True)
        cut = time.monotonic()
        with pytest.raises(UnavailableError):
            async for _ in stream:
                pass
        assert time.monotonic() - cut < KEEPALIVE_BOUND_S
    await _until(lambda: len(servicer.sessions) == 0, KEEPALIVE_BOUND_S)  # the target let go too


@pytest.fixture
async def frozen_target_stack(tiny_draft, tmp_path):
    """A target in its own process (so it can be SIGSTOPped; 1 s keepalive) and an in-process
    draft whose orchestrator (no stop tokens) uses it."""
    from edgespec.draft.config import DraftConfig
    from edgespec.draft.serve import start_draft
    from edgespec.orchestrator.config import OrchestratorConfig
    ready = tmp_path / "target.addr"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgespec", "target", "--model", "tiny", "--threads", "1", "--listen",
        "127.0.0.1:0", "--ready-file", str(ready), "--keepalive-time", "1", "--keepalive-timeout", "1",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await _until(ready.exists, 120.0)
        orch = OrchestratorConfig(target=ready.read_text(), tokenizer="tiny", server=SLOW_FIRST,
                                  resume=NO_RESUME)
        draft = await start_draft(DraftConfig(model="tiny", orchestrator=orch, server=SLOW_FIRST),
                                  dataclasses.replace(tiny_draft, eos_token_ids=()))
        yield process, ready.read_text(), draft
        await draft.running.stop()
        await draft.shutdown()
    finally:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        await process.wait()


async def test_a_frozen_target_is_detected_by_keepalive(frozen_target_stack):
    process, target_address, draft = frozen_target_stack
    async with AsyncClient(draft.running.address, timeout=T, max_retries=0) as client:
        stream = client.stream(prompt_token_ids=PROMPT, max_new_tokens=4000)
        assert (await anext(stream)).token_ids
        process.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        with pytest.raises(UnavailableError):
            async for _ in stream:
                pass
        assert time.monotonic() - frozen < KEEPALIVE_BOUND_S
    process.send_signal(signal.SIGCONT)
    async with grpc.aio.insecure_channel(target_address) as channel:  # the thawed target let the session go
        stub = target_pb2_grpc.VerifierStub(channel)
        async with asyncio.timeout(KEEPALIVE_BOUND_S):
            while (await stub.Info(common_pb2.InfoRequest(), timeout=T)).live_sessions:
                await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# (6) the smaller ones

@pytest.mark.parametrize("option, words", [("k", ("k:", "1..32", "got 0")), ("k_max", ("k_max:", "got 0")),
                                           ("max_new_tokens", ("max_new_tokens:", "got 0"))])
async def test_zero_is_refused_not_taken_for_unset(client, option, words):
    with pytest.raises(InvalidArgumentError) as info:
        await client.generate(prompt_token_ids=PROMPT, **{option: 0})
    for word in words:
        assert word in info.value.details, info.value.details
    result = await client.generate(prompt_token_ids=PROMPT, max_new_tokens=3)   # unset k: the server's
    assert len(result.token_ids) == 3


async def test_one_caller_holds_at_most_its_share_of_the_orchestrators_generations(
        tiny_target, tiny_draft, monkeypatch):
    from edgespec.draft.config import DraftConfig
    from edgespec.draft.serve import start_draft
    from edgespec.orchestrator.config import OrchestratorConfig
    from edgespec.rpc import caller
    from edgespec.target.config import TargetConfig
    from edgespec.target.serve import start_target, stop_target
    target, servicer = await start_target(TargetConfig(model="tiny", server=SLOW_FIRST), tiny_target)
    orch = OrchestratorConfig(target=target.address, tokenizer="tiny", server=SLOW_FIRST, max_sessions=4)
    draft = await start_draft(DraftConfig(model="tiny", orchestrator=orch, server=SLOW_FIRST),
                              dataclasses.replace(tiny_draft, eos_token_ids=()))     # generations run on
    try:
        async with AsyncClient(draft.running.address, timeout=T, max_retries=0) as client:
            monkeypatch.setattr(caller, "peer_host", lambda peer: "ip:192.0.2.1")    # one remote caller
            streams = [client.stream(prompt_token_ids=PROMPT, max_new_tokens=4000) for _ in range(2)]
            for stream in streams:                                                   # its share: 4 // 2
                assert (await anext(stream)).token_ids
            with pytest.raises(ResourceExhaustedError, match="per caller"):
                await client.generate(prompt_token_ids=PROMPT, max_new_tokens=4)
            monkeypatch.setattr(caller, "peer_host", lambda peer: "ip:192.0.2.2")    # another caller gets in
            assert len((await client.generate(prompt_token_ids=PROMPT, max_new_tokens=4)).token_ids) == 4
            for stream in streams:
                await stream.aclose()
    finally:
        await draft.running.stop()
        await draft.shutdown()
        await stop_target(target, servicer)
