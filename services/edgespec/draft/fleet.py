"""A simulated fleet against one draft service, for `edgespec bench capacity --side draft`: N
devices' sessions at once through the real gRPC Drafter, each proposing k-token blocks and
committing the verdicts a real run recorded (no target model runs while the draft is measured).
Every session opens (prefill) first; the clock starts when all are open. Measures, per device,
committed tokens, wall time, each round's latency (propose + commit) and whether each proposal
equals the recorded one. No models here; it lives with the draft service because it speaks its
gRPC API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import grpc

from edgespec.bench.capacity_record import Recording, exact_spec
from edgespec.core.types import DraftPlan, Verdict
from edgespec.rpc.remote import RemoteDrafter
from edgespec.target.fleet import DeviceResult


async def _replay(drafter: RemoteDrafter, recording: Recording, k: int, max_new: int) -> DeviceResult:
    start, committed, same, latencies = time.perf_counter(), 0, 0, []
    for r, block in enumerate(recording.blocks):
        plan_k = min(k, max_new - committed - 1)
        if plan_k < 0:
            break
        sent = time.perf_counter()
        proposal = await drafter.propose(DraftPlan(k=plan_k))
        accepted = min(block.accepted, proposal.k)
        await drafter.commit(Verdict(round=r, accepted=accepted, token=block.token if block.token is not None else 0))
        latencies.append((time.perf_counter() - sent) * 1e3)
        committed += accepted + 1
        same += tuple(proposal.tokens) == block.tokens[:plan_k]
    return DeviceResult(committed, time.perf_counter() - start, tuple(latencies), same, len(latencies))


async def run_draft_devices(address: str, recordings: list[Recording], n: int, k: int, max_new: int,
                            opened: Callable[[], None] = lambda: None) -> tuple[list[DeviceResult], float]:
    """N devices (device i replays recording i mod len) at once; (results, wall seconds from the
    moment all are open — `opened` is called then)."""
    picks = [recordings[i % len(recordings)] for i in range(n)]
    async with grpc.aio.insecure_channel(address) as channel:
        drafters = await asyncio.gather(*(RemoteDrafter.open(channel, exact_spec(r.prompt_ids, max_new)) for r in picks))
        try:
            opened()
            start = time.perf_counter()
            results = await asyncio.gather(*(_replay(d, r, k, max_new) for d, r in zip(drafters, picks)))
            return list(results), time.perf_counter() - start
        finally:
            for drafter in drafters:
                await drafter.close()
