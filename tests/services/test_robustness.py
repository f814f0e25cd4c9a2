"""Robustness over real servers (tiny preset): sessions are freed on stream end, on client
disconnect and after the idle TTL; session ids are unguessable; the standalone orchestrator (the
RemoteDrafter path) matches the embedded one; a target that dies or drains mid-generation gives the
SDK a prompt UNAVAILABLE while the draft service keeps serving; health goes NOT_SERVING on stop.

"Endless" stacks run an orchestrator without stop tokens, so a generation runs to max_new_tokens
(seconds on the tiny preset) and can be interrupted mid-run deterministically.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgespec.bench.baselines import target_only
from edgespec.draft.config import DraftConfig
from edgespec.draft.serve import DraftServer, start_draft
from edgespec.orchestrator.config import OrchestratorConfig
from edgespec.rpc.resume import ResumePolicy
from edgespec.rpc.server import RunningServer, ServerOptions
from edgespec.target.config import TargetConfig
from edgespec.target.serve import start_target
from edgespec.target.servicer import VerifierServicer
from edgespec.v1 import common_pb2, draft_pb2, draft_pb2_grpc, target_pb2, target_pb2_grpc
from edgespec_client import AsyncClient, ResourceExhaustedError, UnavailableError

FAST = ServerOptions(listen="127.0.0.1:0", grace_s=0.5, keepalive_time_s=1.0, keepalive_timeout_s=1.0)
T = 10.0                       # per-call timeout, seconds
PROMPT = [76, 73, 80, 80]      # "hell" in the tiny tokenizer
LONG = 4000                    # max_new_tokens of an endless generation: far longer than any test
PROMPTS = ["hello there", "the quick brown fox", "1 2 3 4"]
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


@dataclasses.dataclass
class Endless:
    """A target and a draft server (embedded orchestrator without stop tokens), stoppable by tests."""

    target: RunningServer
    target_servicer: VerifierServicer
    draft: DraftServer

    @property
    def target_address(self) -> str:
        return self.target.address

    @property
    def draft_address(self) -> str:
        return self.draft.running.address


@pytest.fixture
async def endless_factory(tiny_target, tiny_draft):
    """Start endless stacks (orchestrator overrides as keywords); stops whatever is still up."""
    started = []

    async def make(**orchestrator_overrides) -> Endless:
        target, servicer = await start_target(TargetConfig(model="tiny", server=FAST), tiny_target)
        orch = OrchestratorConfig(target=target.address, tokenizer="tiny", server=FAST, **orchestrator_overrides)
        no_stop = dataclasses.replace(tiny_draft, eos_token_ids=())
        draft = await start_draft(DraftConfig(model="tiny", orchestrator=orch, server=FAST), no_stop)
        started.append(Endless(target, servicer, draft))
        return started[-1]

    yield make
    for s in started:
        await s.draft.running.stop()
        await s.draft.shutdown()
        await s.target.stop()  # a no-op where the test stopped it already
        await s.target_servicer.shutdown()


@pytest.fixture
async def endless(endless_factory) -> Endless:
    # one target: a resume can only wait for it to come back; 1 s keeps these failures prompt
    return await endless_factory(resume=ResumePolicy(reopen_timeout_s=1.0))


async def _until(predicate, timeout_s: float = 5.0) -> None:
    """Poll `predicate` until true (bounded); fail otherwise."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


def _open_msg() -> common_pb2.SessionOpen:
    return common_pb2.SessionOpen(prompt_token_ids=PROMPT, acceptance="exact", max_new_tokens=16)


async def _open_target(channel):
    call = target_pb2_grpc.VerifierStub(channel).Session(timeout=T)
    await call.write(target_pb2.VerifierRequest(open=_open_msg()))
    return call, (await call.read()).opened.session_id


async def _open_draft(channel):
    call = draft_pb2_grpc.DrafterStub(channel).Session(timeout=T)
    await call.write(draft_pb2.DrafterRequest(open=_open_msg()))
    return call, (await call.read()).opened.session_id


def _block(session_id: str, round_: int) -> target_pb2.VerifierRequest:
    return target_pb2.VerifierRequest(block=common_pb2.DraftBlock(session_id=session_id, round=round_))


async def _health(address: str, service: str = "") -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        request = health_pb2.HealthCheckRequest(service=service)
        return (await health_pb2_grpc.HealthStub(channel).Check(request, timeout=T)).status


async def _first_chunks(stream, n: int) -> None:
    for _ in range(n):
        assert (await anext(stream)).token_ids


# ---------------------------------------------------------------------------------------------
# sessions are freed

async def test_sessions_freed_on_stream_end(stack):
    async with grpc.aio.insecure_channel(stack.target_address) as channel:
        call, session_id = await _open_target(channel)
        await call.write(_block(session_id, 0))
        assert (await call.read()).verdict.round == 0
        assert len(stack.target_servicer.sessions) == 1
        await call.done_writing()
        assert await call.read() == grpc.aio.EOF
        assert len(stack.target_servicer.sessions) == 0  # freed before the status was sent
    async with grpc.aio.insecure_channel(stack.draft_address) as channel:
        call, _ = await _open_draft(channel)
        assert len(stack.draft_server.drafter.sessions) == 1
        await call.done_writing()
        assert await call.read() == grpc.aio.EOF
        assert len(stack.draft_server.drafter.sessions) == 0


async def test_sessions_freed_when_a_raw_stream_is_cancelled(stack):
    async with (grpc.aio.insecure_channel(stack.target_address) as target,
                grpc.aio.insecure_channel(stack.draft_address) as draft):
        calls = [(await _open_target(target))[0], (await _open_draft(draft))[0]]
        assert len(stack.target_servicer.sessions) == len(stack.draft_server.drafter.sessions) == 1
        for call in calls:
            call.cancel()
        await _until(lambda: len(stack.target_servicer.sessions) == 0, 3.0)
        await _until(lambda: len(stack.draft_server.drafter.sessions) == 0, 3.0)


async def test_sdk_cancel_frees_sessions_and_the_orchestrator_slot(endless_factory):
    stack = await endless_factory(max_sessions=1)
    async with AsyncClient(stack.draft_address, timeout=60.0, max_retries=0) as client:
        stream = client.stream(prompt_token_ids=PROMPT, max_new_tokens=LONG, k=2)
        await _first_chunks(stream, 3)
        assert len(stack.target_servicer.sessions) == 1  # mid-generation
        with pytest.raises(ResourceExhaustedError):        # the one orchestrator slot is taken
            await client.generate(prompt_token_ids=PROMPT, max_new_tokens=4, timeout=T)
        await stream.aclose()
        await _until(lambda: len(stack.target_servicer.sessions) == 0, 3.0)
        for _ in range(100):  # the orchestrator frees its slot too (bounded: ~1 s)
            try:
                result = await client.generate(prompt_token_ids=PROMPT, max_new_tokens=4, timeout=T)
                break
            except ResourceExhaustedError:
                await asyncio.sleep(0.01)
        else:
            pytest.fail("the orchestrator never freed the cancelled generation's slot")
        assert len(result.token_ids) == 4


async def test_sdk_cancel_through_standalone_orchestrator_frees_draft_session(endless, standalone_factory):
    address = await standalone_factory(endless, endless=True)
    async with AsyncClient(address, timeout=60.0) as client:
        async with client.stream(prompt_token_ids=PROMPT, max_new_tokens=LONG, k=2) as stream:
            await _first_chunks(stream, 3)
            assert len(endless.target_servicer.sessions) == 1
            assert len(endless.draft.drafter.sessions) == 1
    await _until(lambda: len(endless.target_servicer.sessions) == 0, 3.0)
    await _until(lambda: len(endless.draft.drafter.sessions) == 0, 3.0)


async def test_idle_session_expires(stack_factory):
    stack = await stack_factory(target_overrides={"idle_ttl_s": 0.5})
    async with grpc.aio.insecure_channel(stack.target_address) as channel:
        call, session_id = await _open_target(channel)
        for round_ in range(8):  # in use for ~1.6 s, never idle for 0.5 s: stays alive
            await call.write(_block(session_id, round_))
            assert (await call.read()).verdict.round == round_
            await asyncio.sleep(0.2)
        await _until(lambda: len(stack.target_servicer.sessions) == 0, 3.0)  # reaped once idle
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call.read()  # and its stream ends (it is not held open after the session)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "session_id" in info.value.details()
        assert len(stack.target_servicer.sessions) == 0


async def test_session_ids_are_unguessable(stack):
    async with (grpc.aio.insecure_channel(stack.target_address) as target,
                grpc.aio.insecure_channel(stack.draft_address) as draft):
        opened = await asyncio.gather(*[_open_target(target) for _ in range(6)],
                                      *[_open_draft(draft) for _ in range(6)])
        ids = [session_id for _, session_id in opened]
        assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids), ids
        assert len(set(ids)) == len(ids)
        assert len(stack.target_servicer.sessions) == len(stack.draft_server.drafter.sessions) == 6
        for call, _ in opened:
            await call.done_writing()
            assert await call.read() == grpc.aio.EOF
    assert len(stack.target_servicer.sessions) == len(stack.draft_server.drafter.sessions) == 0


# ---------------------------------------------------------------------------------------------
# the standalone orchestrator (RemoteDrafter path)

@pytest.mark.parametrize("k", [1, 4])
async def test_standalone_orchestrator_greedy_parity(stack, client, standalone_factory, tiny_target, k):
    address = await standalone_factory(stack)
    async with AsyncClient(address, timeout=60.0) as remote:
        for prompt in PROMPTS:
            via_drafter = await remote.generate(prompt, max_new_tokens=40, k=k)
            embedded = await client.generate(prompt, max_new_tokens=40, k=k)
            reference = target_only(tiny_target.model, list(via_drafter.prompt_token_ids), 40,
                                    tiny_target.eos_token_ids).token_ids
            assert via_drafter.prompt_token_ids == embedded.prompt_token_ids
            assert list(via_drafter.token_ids) == list(embedded.token_ids) == reference
            assert via_drafter.text == embedded.text
            assert via_drafter.stats.target_forward_passes == 1 + via_drafter.stats.rounds
    assert len(stack.draft_server.drafter.sessions) == 0  # the remote draft sessions were freed


async def test_standalone_orchestrator_rejection_sampling(stack, client, standalone_factory):
    address = await standalone_factory(stack)
    kwargs = dict(max_new_tokens=40, temperature=0.9, top_k=50, top_p=0.95, seed=123, k=4)
    async with AsyncClient(address, timeout=60.0) as remote:
        results = [await remote.generate(prompt, **kwargs) for prompt in PROMPTS]
    for prompt, result in zip(PROMPTS, results):
        s = result.stats
        assert result.acceptance == "rejection" and result.lossless
        assert result.finish_reason in ("stop", "length") and 1 <= len(result.token_ids) <= 40
        assert s.target_forward_passes == 1 + s.rounds
        assert s.drafted_tokens >= s.accepted_tokens and s.generated_tokens == len(result.token_ids)
        embedded = await client.generate(prompt, **kwargs)
        assert embedded.token_ids == result.token_ids  # same seeds, same float32 wire values
    assert any(r.stats.accepted_tokens < r.stats.drafted_tokens for r in results)  # residuals ran
    assert len(stack.draft_server.drafter.sessions) == 0


# ---------------------------------------------------------------------------------------------
# the target dies or drains mid-generation

async def _interrupted(stack: Endless, stop) -> UnavailableError:
    """Start an endless generation, run `stop` after a few chunks; return the SDK's error."""
    async with AsyncClient(stack.draft_address, timeout=60.0) as client:
        stream = client.stream(prompt_token_ids=PROMPT, max_new_tokens=LONG, k=2)
        await _first_chunks(stream, 3)
        stopping = asyncio.create_task(stop())
        with pytest.raises(UnavailableError) as info:
            async with asyncio.timeout(6.0):  # grace 0.5 s, a 1 s reopen that finds no target, then promptly
                async for _ in stream:
                    pass
        await stopping
    return info.value


async def _draft_still_serves(stack: Endless) -> None:
    assert await _health(stack.draft_address) == SERVING
    async with grpc.aio.insecure_channel(stack.draft_address) as channel:
        call, _ = await _open_draft(channel)
        await call.write(draft_pb2.DrafterRequest(propose=draft_pb2.ProposeRequest(k=3)))
        assert len((await call.read()).block.token_ids) == 3
        call.cancel()
    await _until(lambda: len(stack.draft.drafter.sessions) == 0, 3.0)


async def test_target_killed_mid_generation(endless):
    error = await _interrupted(endless, endless.target.stop)
    assert error.code == grpc.StatusCode.UNAVAILABLE and "upstream" in error.details
    await _draft_still_serves(endless)
    async with AsyncClient(endless.draft_address, timeout=T) as client:
        with pytest.raises(UnavailableError):  # target gone: retried, then a prompt typed error
            async with asyncio.timeout(5.0):
                await client.generate(prompt_token_ids=PROMPT, max_new_tokens=4)
    await _draft_still_serves(endless)


async def test_target_draining_mid_generation(endless):
    error = await _interrupted(endless, lambda: endless.target.stop(endless.target_servicer.drain))
    assert error.code == grpc.StatusCode.UNAVAILABLE
    await _draft_still_serves(endless)


async def test_graceful_shutdown(endless):
    seen: dict[str, int] = {}
    async with grpc.aio.insecure_channel(endless.target_address) as channel:
        live, session_id = await _open_target(channel)
        await live.write(_block(session_id, 0))
        assert (await live.read()).verdict.draining is False
        assert await _health(endless.target_address) == SERVING

        async def on_drain() -> None:  # runs after NOT_SERVING, before the server stops
            draining = asyncio.create_task(endless.target_servicer.drain())
            seen[""] = await _health(endless.target_address)
            seen["verifier"] = await _health(endless.target_address, "edgespec.v1.Verifier")
            late = target_pb2_grpc.VerifierStub(channel).Session(timeout=T)
            await late.write(target_pb2.VerifierRequest(open=_open_msg()))
            with pytest.raises(grpc.aio.AioRpcError) as info:  # no new sessions while draining
                await late.read()
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
            await live.write(_block(session_id, 1))  # the live session keeps being served...
            assert (await live.read()).verdict.draining is True
            assert not draining.done()               # ...and the drain waits for it
            await live.done_writing()                # the client finishes its session
            assert await live.read() == grpc.aio.EOF
            await asyncio.wait_for(draining, T)

        await endless.target.stop(on_drain)
    assert seen == {"": NOT_SERVING, "verifier": NOT_SERVING}
    assert len(endless.target_servicer.sessions) == 0
    assert await _health(endless.draft_address) == SERVING  # the draft is unaffected

    draft_seen = []

    async def draft_on_drain() -> None:
        draft_seen.append(await _health(endless.draft_address))
        draft_seen.append(await _health(endless.draft_address, "edgespec.v1.Orchestrator"))

    await endless.draft.running.stop(draft_on_drain)
    assert draft_seen == [NOT_SERVING, NOT_SERVING]
