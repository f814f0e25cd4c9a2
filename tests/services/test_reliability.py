"""Reliability defects of issue 14, each reproduced against real servers (tiny preset) and fixed:
a session doing work is never reaped as idle (server-only generation longer than the idle TTL),
per-caller session limits and a short TTL until the first block, a first-message deadline on
every stream, the Drafter validating commits and its session budget, limits checked at the
orchestrator before any model work, and dead-peer detection by keepalive.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from edgespec.v1 import common_pb2, target_pb2, target_pb2_grpc

T = 20.0                       # per-call timeout, seconds
PROMPT = [76, 73, 80, 80]      # "hell" in the tiny tokenizer


def _open(max_new_tokens: int = 16, **fields) -> target_pb2.VerifierRequest:
    return target_pb2.VerifierRequest(open=common_pb2.SessionOpen(
        prompt_token_ids=PROMPT, acceptance="exact", max_new_tokens=max_new_tokens, **fields))


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
