"""Fault suite (Triton's L0_grpc_state_cleanup style): real `edgespec target` and `edgespec draft`
processes on loopback (tiny preset, 1 s keepalive), a generation in flight, then a fault — kill -9,
SIGSTOP or a drain (SIGTERM) of the target serving it, kill -9 or SIGSTOP of the draft. Each case
asserts what the client sees and how soon, that every survivor's `edgespec_live_sessions` is back
to 0, and that the next generation is correct. With two target replicas the interrupted generation
itself completes (resumed on the other) with identical greedy output.

Covered elsewhere, same assertions: a blackholed link and a frozen target without a second replica
(test_reliability: keepalive), never-send and open-then-idle streams (test_reliability: first-message
deadline, short open TTL), SDK cancel in every phase (test_robustness), in-process drain and abrupt
stop (test_robustness), connections aged out mid-stream (test_replicas).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time

import pytest

from edgespec.bench.baselines import target_only
from edgespec_client import AsyncClient, DeadlineExceededError, UnavailableError

PROMPT = [5, 17, 42, 9, 3]
LONG = 3000                     # tokens: a generation still running when the fault hits
SDK_KEEPALIVE = {"grpc.keepalive_time_ms": 1000, "grpc.keepalive_timeout_ms": 1000,
                 "grpc.http2.ping_timeout_ms": 1000}
FREED_S = 10.0                  # a survivor lets go of a dead peer's sessions within this (keepalive)
RESUMED_S = 60.0                # the interrupted generation completes within this


def _target(grace: str = "0.5") -> tuple[str, ...]:
    return ("target", "--model", "tiny", "--threads", "1", "--grace", grace)


def _draft(targets: list[Process]) -> tuple[str, ...]:
    return ("draft", "--model", "tiny", "--threads", "1", "--grace", "0.5", "--reopen-timeout", "3",
            "--target", ",".join(t.address for t in targets))


def _reference(tiny_target, n: int) -> list[int]:
    return target_only(tiny_target.model, PROMPT, n, (tiny_target.vocab_size + 1,)).token_ids


async def _until(predicate, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.05)


TARGET_FAULTS = {
    "kill -9": signal.SIGKILL,
    "SIGSTOP": signal.SIGSTOP,   # a frozen replica: keepalive notices, the stream resumes elsewhere
    "drain": signal.SIGTERM,     # NOT_SERVING, the grace, then its streams are cut and resume
}


@pytest.mark.parametrize("fault", list(TARGET_FAULTS))
async def test_a_target_fault_mid_generation_resumes_on_the_other_replica(spawn, tiny_target, fault):
    targets = [await spawn(*_target(grace="1")) for _ in range(2)]
    draft = await spawn(*_draft(targets))
    async with AsyncClient(draft.address, timeout=RESUMED_S, channel_options=SDK_KEEPALIVE) as client:
        stream = client.stream(prompt_token_ids=PROMPT, max_new_tokens=LONG, ignore_eos=True, k=2)
        tokens = list((await anext(stream)).token_ids)
        victim, = [t for t in targets if t.live("target") == 1]
        survivor, = [t for t in targets if t is not victim]
        victim.signal(TARGET_FAULTS[fault])
        hit = time.monotonic()
        tokens += [t async for chunk in stream for t in chunk.token_ids]
        assert time.monotonic() - hit < RESUMED_S
        assert tokens == _reference(tiny_target, LONG)           # identical to an uninterrupted run
        assert stream.result.stats.resumes == 1
        await _until(lambda: survivor.live("target") == 0 and draft.live("orchestrator") == 0, FREED_S)
        if fault == "SIGSTOP":                                    # thawed, it has let go as well
            victim.signal(signal.SIGCONT)
            await _until(lambda: victim.live("target") == 0, FREED_S)
        after = await client.generate(prompt_token_ids=PROMPT, max_new_tokens=32, ignore_eos=True)
        assert list(after.token_ids) == _reference(tiny_target, 32) and after.stats.resumes == 0


DRAFT_FAULTS = {
    "kill -9": (signal.SIGKILL, UnavailableError),
    "SIGSTOP": (signal.SIGSTOP, (UnavailableError, DeadlineExceededError)),   # the SDK's keepalive
}


@pytest.mark.parametrize("fault", list(DRAFT_FAULTS))
async def test_a_draft_fault_mid_generation_fails_fast_and_frees_the_target(spawn, tiny_target, fault):
    sig, error = DRAFT_FAULTS[fault]
    target = await spawn(*_target())
    draft = await spawn(*_draft([target]))
    async with AsyncClient(draft.address, timeout=30.0, max_retries=0, channel_options=SDK_KEEPALIVE) as client:
        stream = client.stream(prompt_token_ids=PROMPT, max_new_tokens=LONG, ignore_eos=True, k=2)
        await anext(stream)
        assert target.live("target") == 1
        draft.signal(sig)
        hit = time.monotonic()
        with pytest.raises(error):
            async for _ in stream:
                pass
        assert time.monotonic() - hit < FREED_S                  # keepalive, not the 30 s deadline
    await _until(lambda: target.live("target") == 0, FREED_S)   # the target let go of the session
    with contextlib.suppress(ProcessLookupError):   # kill -9: it may be reaped already
        draft.signal(signal.SIGCONT)
        draft.process.kill()
    await draft.process.wait()
    fresh = await spawn(*_draft([target]))                        # the next generation is correct
    async with AsyncClient(fresh.address, timeout=60.0) as client:
        after = await client.generate(prompt_token_ids=PROMPT, max_new_tokens=32, ignore_eos=True)
    assert list(after.token_ids) == _reference(tiny_target, 32)
    await _until(lambda: target.live("target") == 0 and fresh.live("orchestrator") == 0, FREED_S)


CLIENT = """
import asyncio, sys
from edgespec_client import AsyncClient
async def main():
    async with AsyncClient(sys.argv[1], timeout=600) as client:
        async for chunk in client.stream(prompt_token_ids=[5, 17, 42, 9, 3], max_new_tokens=3000, ignore_eos=True):
            print("streaming", flush=True)
asyncio.run(main())
"""


async def test_a_frozen_sdk_client_has_its_sessions_freed_everywhere(spawn):
    """SIGSTOP of the SDK's process mid-stream: the draft's keepalive (1 s) ends the generation and
    both the orchestrator and the target let go of it; the next generation is served."""
    target = await spawn(*_target())
    draft = await spawn(*_draft([target]))
    client = await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENT, draft.address,
                                                  stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert await asyncio.wait_for(client.stdout.readline(), 120.0) == b"streaming\n"
        assert draft.live("orchestrator") == 1 and target.live("target") == 1
        client.send_signal(signal.SIGSTOP)
        await _until(lambda: draft.live("orchestrator") == 0 and draft.live("draft") == 0
                     and target.live("target") == 0, FREED_S)
    finally:
        client.send_signal(signal.SIGCONT)
        client.kill()
        await client.wait()
    async with AsyncClient(draft.address, timeout=60.0) as sdk:
        assert len((await sdk.generate(prompt_token_ids=PROMPT, max_new_tokens=8, ignore_eos=True)).token_ids) == 8
