"""The soak's load and its watcher: N SDK workers loop over a fixed mix of requests — greedy
fixed-k, sampled, `auto`, server-only and generations the client cancels after two chunks —
checking every greedy answer against a reference, while a sampler records each server
process's RSS / threads / fds and the target's and draft's live sessions. Used by
`edgespec bench soak` (which starts the servers, computes the references and reports) and
tests/bench/test_soak.py. It judges nothing.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import asdict, dataclass

import grpc

from edgespec.suites.proc_stats import proc_stats
from edgespec.v1 import common_pb2, draft_pb2_grpc, target_pb2_grpc
from edgespec_client import AsyncClient, EdgespecError

MIX = {"greedy": 12, "sampled": 3, "auto": 2, "server": 1, "cancel": 2}   # per 20 requests
OPTIONS = {"greedy": {"draft_length": "fixed", "k": 3}, "auto": {"draft_length": "auto"},
           "server": {"draft_length": "server"}, "cancel": {"draft_length": "fixed", "k": 3},
           "sampled": {"draft_length": "fixed", "k": 3, "temperature": 0.8, "top_p": 0.9}}
GREEDY = ("greedy", "auto", "server")      # temperature 0: the output must be target-only greedy
SCHEDULE = [kind for kind, n in MIX.items() for _ in range(n)]
random.Random(0).shuffle(SCHEDULE)


@dataclass(frozen=True)
class Request:
    kind: str
    prompt: int
    start_s: float       # since the soak began
    seconds: float
    status: str          # OK, CANCELLED (by us) or the error's status code
    tokens: int
    correct: bool | None  # greedy kinds: equal to the reference

    def to_dict(self) -> dict:
        return asdict(self)


async def _one(client: AsyncClient, kind: str, ids: list[int], max_new: int, seed: int) -> tuple[str, list[int]]:
    options = dict(OPTIONS[kind])
    if kind == "sampled":
        options["seed"] = seed
    if kind != "cancel":
        result = await client.generate(prompt_token_ids=ids, max_new_tokens=max_new, **options)
        return "OK", list(result.token_ids)
    got: list[int] = []
    async with client.stream(prompt_token_ids=ids, max_new_tokens=max_new, **options) as chunks:
        async for chunk in chunks:
            got += chunk.token_ids
            if len(got) >= 2:
                break
    return "CANCELLED", got


async def worker(address: str, w: int, prompts: list[list[int]], references: list[list[int]], max_new: int,
                 t0: float, until: float, out: list[Request]) -> None:
    """Requests back to back until `until` (monotonic), worker `w`'s own walk through the mix."""
    async with AsyncClient(address, timeout=600) as client:
        i = 0
        while time.monotonic() < until:
            kind, p = SCHEDULE[(7 * w + i) % len(SCHEDULE)], (w + i) % len(prompts)
            start = time.monotonic()
            try:
                status, tokens = await _one(client, kind, prompts[p], max_new, seed=1000 * w + i)
            except EdgespecError as exc:
                status, tokens = exc.code.name, []
            correct = tokens == references[p] if kind in GREEDY and status == "OK" else None
            out.append(Request(kind, p, round(start - t0, 3), round(time.monotonic() - start, 4), status,
                               len(tokens), correct))
            i += 1


async def live_sessions(channels: dict[str, grpc.aio.Channel]) -> dict[str, int]:
    """Live sessions the target and the draft report (Info)."""
    stubs = {"target": target_pb2_grpc.VerifierStub, "draft": draft_pb2_grpc.DrafterStub}
    return {role: (await stubs[role](channels[role]).Info(common_pb2.InfoRequest(), timeout=10)).live_sessions
            for role in stubs}


async def sample(procs: dict, channels: dict[str, grpc.aio.Channel], t0: float) -> dict:
    """One sample: seconds since the start, each process's stats, live sessions."""
    return {"t": round(time.monotonic() - t0, 2), "live": await live_sessions(channels),
            **{role: proc_stats(proc.pid).to_dict() for role, proc in procs.items()}}


async def soak(addresses: dict[str, str], procs: dict, prompts: list[list[int]], references: list[list[int]],
               sessions: int, seconds: float, every_s: float, max_new: int) -> tuple[list[Request], list[dict]]:
    """Run `sessions` workers for `seconds` through the draft's embedded orchestrator, sampling
    every `every_s`; then wait (<= 30 s) for live sessions to reach 0 and take a last sample."""
    channels = {role: grpc.aio.insecure_channel(addresses[role]) for role in ("target", "draft")}
    requests: list[Request] = []
    samples: list[dict] = []
    t0 = time.monotonic()
    until = t0 + seconds
    try:
        samples.append(await sample(procs, channels, t0))
        workers = [asyncio.create_task(worker(addresses["draft"], w, prompts, references, max_new, t0, until,
                                              requests)) for w in range(sessions)]
        while time.monotonic() < until:
            await asyncio.sleep(min(every_s, max(0.0, until - time.monotonic())))
            samples.append(await sample(procs, channels, t0))
        await asyncio.gather(*workers)
        for _ in range(300):
            if not any((await live_sessions(channels)).values()):
                break
            await asyncio.sleep(0.1)
        samples.append(await sample(procs, channels, t0))
    finally:
        for channel in channels.values():
            await channel.close()
    return requests, samples
