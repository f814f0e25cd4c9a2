"""A simulated fleet for `edgespec bench capacity`: N device sessions against one real gRPC target at
once, each either replaying a recorded draft run block by block (speculative modes) or asking the
target to generate every token itself (server-only). Every session opens (prefill) first; the
clock starts when all are open. Measures, per device, committed tokens, wall time, each round's
latency and whether each replayed verdict equals the recorded (alone) one. No models here; it lives with the target service because it speaks its
gRPC API (the bench package stays off grpc).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from edgespec.bench.capacity_record import Recording, exact_spec
from edgespec.core.types import Proposal
from edgespec.rpc.remote import RemoteVerifier



@dataclass(frozen=True)
class DeviceResult:
    """One simulated device's run."""

    tokens: int
    seconds: float
    round_ms: tuple[float, ...]
    same_verdicts: int        # replayed verdicts equal to the recorded ones (speculative modes)
    verdicts: int


async def _replay(verifier: RemoteVerifier, recording: Recording, max_new: int) -> DeviceResult:
    start, committed, same, latencies = time.perf_counter(), 0, 0, []
    for r, block in enumerate(recording.blocks):
        k = min(len(block.tokens), max_new - committed - 1)
        if k < 0:
            break
        sent = time.perf_counter()
        verdict = await verifier.verify(Proposal(round=r, tokens=block.tokens[:k], q_probs=block.q_probs[:k]))
        latencies.append((time.perf_counter() - sent) * 1e3)
        committed += verdict.accepted + 1
        same += (verdict.accepted, verdict.token) == (block.accepted, block.token)
    return DeviceResult(committed, time.perf_counter() - start, tuple(latencies), same, len(latencies))


async def _server_only(verifier: RemoteVerifier, max_new: int) -> DeviceResult:
    start, latencies, last = time.perf_counter(), [], time.perf_counter()
    async for _ in verifier.autoregress(Proposal(round=0, tokens=()), max_new):
        now = time.perf_counter()
        latencies.append((now - last) * 1e3)
        last = now
    return DeviceResult(len(latencies), time.perf_counter() - start, tuple(latencies), 0, 0)


async def run_devices(address: str, recordings: list[Recording], n: int, max_new: int, server_only: bool,
                      opened: Callable[[], None] = lambda: None) -> tuple[list[DeviceResult], float]:
    """N devices (device i replays recording i mod len) at once; (results, wall seconds from the
    moment all are open — `opened` is called then)."""
    async with grpc.aio.insecure_channel(address) as channel:
        return await _run(channel, recordings, n, max_new, server_only, opened)


async def _run(channel, recordings: list[Recording], n: int, max_new: int, server_only: bool,
               opened: Callable[[], None]) -> tuple[list[DeviceResult], float]:
    picks = [recordings[i % len(recordings)] for i in range(n)]
    verifiers = await asyncio.gather(*(RemoteVerifier.open(channel, exact_spec(r.prompt_ids, max_new))
                                       for r in picks))
    try:
        opened()
        start = time.perf_counter()
        runs = [_server_only(v, max_new) if server_only else _replay(v, r, max_new)
                for v, r in zip(verifiers, picks)]
        results = await asyncio.gather(*runs)
        return list(results), time.perf_counter() - start
    finally:
        for verifier in verifiers:
            await verifier.close()
