"""Several replicas behind one `--target` (and `--draft`): new sessions go round-robin to healthy
replicas, a draining replica finishes its live sessions and gets no new ones, a dead one gets none,
and a generation whose replica dies mid-stream resumes on another with identical greedy output
(prompt + committed tokens re-prefilled once, counted in `stats.resumes`)."""

from __future__ import annotations

import asyncio
import dataclasses
import signal

import pytest

from edgespec.bench.baselines import target_only
from edgespec.draft.config import DraftConfig
from edgespec.draft.serve import start_draft
from edgespec.orchestrator.config import OrchestratorConfig
from edgespec.orchestrator.serve import start_orchestrator
from edgespec.rpc.resume import ResumePolicy
from edgespec.rpc.server import ServerOptions
from edgespec.rpc.targets import parse_upstream
from edgespec.target.config import TargetConfig
from edgespec.target.serve import start_target, stop_target
from edgespec.telemetry.runtime import Telemetry
from edgespec_client import AsyncClient

FAST = ServerOptions(listen="127.0.0.1:0", grace_s=0.5, keepalive_time_s=1.0, keepalive_timeout_s=1.0)
PROMPT = [5, 17, 42, 9, 3]
T = 120.0


def _reference(model, n: int) -> list[int]:
    """Target-only greedy, never stopping early (the drafts here have no stop tokens either)."""
    return target_only(model.model, PROMPT, n, (model.vocab_size + 1,)).token_ids


def _opened(servicer, service: str = "target") -> float:
    return servicer.telemetry.metrics.registry.get_sample_value(
        "edgespec_sessions_opened_total", {"service": service}) or 0.0


async def _until(predicate, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.02)


def test_upstream_forms():
    assert parse_upstream("10.0.0.1:5").target == "10.0.0.1:5"
    listed = parse_upstream("127.0.0.1:5001, localhost:5002")
    assert listed.replicas == 2 and listed.target in ("ipv4:127.0.0.1:5001,127.0.0.1:5002",)
    assert parse_upstream("dns:///edgespec-target:50051").target == "dns:///edgespec-target:50051"
    for bad in ("", "host", "a:1,b", "127.0.0.1:0,127.0.0.1:2", "127.0.0.1:1,[::1]:2"):
        with pytest.raises(ValueError, match="^target: "):
            parse_upstream(bad)


@pytest.fixture
async def replicas(tiny_target, tiny_draft):
    """Three in-process targets (own telemetry each) and a draft whose orchestrator lists them."""
    started = []

    async def make(n: int = 3, grace_s: float = 0.5):
        targets = [await start_target(TargetConfig(model="tiny", server=dataclasses.replace(FAST, grace_s=grace_s)),
                                      tiny_target, Telemetry()) for _ in range(n)]
        started.extend(targets)
        orch = OrchestratorConfig(target=",".join(running.address for running, _ in targets), tokenizer="tiny",
                                  server=FAST)
        draft = await start_draft(DraftConfig(model="tiny", orchestrator=orch, server=FAST),
                                  dataclasses.replace(tiny_draft, eos_token_ids=()))
        started.append(draft)
        return targets, draft

    yield make
    for item in reversed(started):
        if isinstance(item, tuple):
            await stop_target(*item)
        else:
            await item.running.stop()
            await item.shutdown()


async def test_sessions_spread_over_all_replicas(replicas, tiny_target):
    targets, draft = await replicas(3)
    want = _reference(tiny_target, 12)
    async with AsyncClient(draft.running.address, timeout=T) as client:
        for _ in range(5):  # 30 generations, 6 at a time
            results = await asyncio.gather(*(client.generate(prompt_token_ids=PROMPT, max_new_tokens=12, k=3)
                                             for _ in range(6)))
            assert all(list(r.token_ids) == want for r in results)
    counts = [_opened(servicer) for _, servicer in targets]
    assert sum(counts) == 30 and min(counts) >= 6, counts   # each replica >= 20%
    assert all(len(servicer.sessions) == 0 for _, servicer in targets)


async def test_a_draining_replica_finishes_its_sessions_and_gets_no_new_ones(replicas, tiny_target):
    targets, draft = await replicas(3, grace_s=60.0)
    async with AsyncClient(draft.running.address, timeout=T) as client:
        stream = client.stream(prompt_token_ids=PROMPT, max_new_tokens=150, k=2)
        first = list((await anext(stream)).token_ids)
        (running, servicer), = [t for t in targets if len(t[1].sessions)]   # the replica serving it
        before = _opened(servicer)
        drain = asyncio.create_task(stop_target(running, servicer, drain=True))
        await _until(lambda: servicer.draining)
        others = await asyncio.gather(*(client.generate(prompt_token_ids=PROMPT, max_new_tokens=6) for _ in range(6)))
        tokens = first + [t async for chunk in stream for t in chunk.token_ids]
        assert tokens == _reference(tiny_target, 150)
        assert stream.result.stats.resumes == 0          # it finished where it started
        assert _opened(servicer) == before                # the new ones went elsewhere
        assert all(list(r.token_ids) == _reference(tiny_target, 6) for r in others)
        await drain
    targets.remove((running, servicer))


async def test_a_dead_replica_gets_no_new_sessions(replicas, tiny_target):
    targets, draft = await replicas(3)
    dead = targets.pop(0)
    await dead[0].server.stop(0)  # gone without a drain
    async with AsyncClient(draft.running.address, timeout=T, max_retries=0) as client:
        results = await asyncio.gather(*(client.generate(prompt_token_ids=PROMPT, max_new_tokens=6) for _ in range(10)))
    assert all(list(r.token_ids) == _reference(tiny_target, 6) and r.stats.resumes == 0 for r in results)
    assert sum(_opened(servicer) for _, servicer in targets) == 10
    await stop_target(*dead)


async def test_three_target_processes_share_the_sessions_and_a_killed_one_gets_none(spawn, tiny_target):
    """The deploy issue's loopback check: 30 sessions over 3 `edgespec target` processes (each >= 20%);
    one killed mid-run (its generation resumes elsewhere); the next 15 sessions avoid it."""
    targets = [await spawn("target", "--model", "tiny", "--threads", "1") for _ in range(3)]
    draft = await spawn("draft", "--model", "tiny", "--threads", "1", "--target", ",".join(t.address for t in targets))
    opened = lambda t: t.metric("edgespec_sessions_opened_total", "target")  # noqa: E731
    async with AsyncClient(draft.address, timeout=T) as client:
        for _ in range(5):
            await asyncio.gather(*(client.generate(prompt_token_ids=PROMPT, max_new_tokens=8, ignore_eos=True)
                                   for _ in range(6)))
        counts = [opened(t) for t in targets]
        assert sum(counts) == 30 and min(counts) >= 6, counts
        await _until(lambda: all(t.live("target") == 0 for t in targets))   # the 30 are freed everywhere
        stream = client.stream(prompt_token_ids=PROMPT, max_new_tokens=2000, ignore_eos=True, k=2)
        tokens = list((await anext(stream)).token_ids)
        victim, = [t for t in targets if t.live("target") == 1]
        victim.signal(signal.SIGKILL)
        later = await asyncio.gather(*(client.generate(prompt_token_ids=PROMPT, max_new_tokens=8, ignore_eos=True)
                                       for _ in range(15)))
        tokens += [t async for chunk in stream for t in chunk.token_ids]
    assert tokens == _reference(tiny_target, 2000) and stream.result.stats.resumes == 1
    assert all(r.stats.resumes == 0 and list(r.token_ids) == _reference(tiny_target, 8) for r in later)
    survivors = [t for t in targets if t is not victim]
    assert sum(opened(t) for t in survivors) == sum(counts) - counts[targets.index(victim)] + 15 + 1


@pytest.fixture
async def draft_replicas(tiny_target, tiny_draft):
    """A target, two Drafter servers without an orchestrator, and a standalone orchestrator
    listing both drafts."""
    target = await start_target(TargetConfig(model="tiny", server=FAST), tiny_target)
    drafts = [await start_draft(DraftConfig(model="tiny", embed_orchestrator=False, server=FAST,
                                            orchestrator=OrchestratorConfig(target=target[0].address)),
                                dataclasses.replace(tiny_draft, eos_token_ids=()), Telemetry()) for _ in range(2)]
    config = OrchestratorConfig(target=target[0].address, draft=",".join(d.running.address for d in drafts),
                                tokenizer="tiny", server=FAST)
    telemetry = Telemetry()
    orchestrator, channels = await start_orchestrator(config, telemetry)
    yield orchestrator, drafts, target
    await orchestrator.stop()
    for channel in channels:
        await channel.close()
    for draft in drafts:
        await draft.running.stop()
        await draft.shutdown()
    await stop_target(*target)


async def test_the_standalone_orchestrator_resumes_a_broken_draft_stream(draft_replicas, tiny_target):
    orchestrator, drafts, (_, target_servicer) = draft_replicas
    async with AsyncClient(orchestrator.address, timeout=T) as client:
        stream = client.stream(prompt_token_ids=PROMPT, max_new_tokens=200, k=3)
        tokens = list((await anext(stream)).token_ids)
        victim, = [d for d in drafts if len(d.drafter.sessions)]
        await victim.running.server.stop(0)   # the draft replica goes away mid-stream
        tokens += [t async for chunk in stream for t in chunk.token_ids]
    # the standalone orchestrator stops at the tokenizer's end of sequence, as target-only does
    assert tokens == target_only(tiny_target.model, PROMPT, 200, tiny_target.eos_token_ids).token_ids
    assert stream.result.stats.resumes == 1
    await _until(lambda: len(target_servicer.sessions) == 0)


@pytest.mark.parametrize("options", [
    {"draft_length": "server"},                                   # server-only: autoregress resumes mid-run
    {"k": 4, "temperature": 0.8, "seed": 7},                      # rejection sampling, residual corrections
])
async def test_a_generation_resumes_in_every_mode(replicas, tiny_target, options):
    targets, draft = await replicas(2)
    async with AsyncClient(draft.running.address, timeout=T) as client:
        stream = client.stream(prompt_token_ids=PROMPT, max_new_tokens=120, **options)
        tokens = list((await anext(stream)).token_ids)
        (running, servicer), = [t for t in targets if len(t[1].sessions)]
        await running.server.stop(0)   # the replica goes away mid-stream
        tokens += [t async for chunk in stream for t in chunk.token_ids]
    stats = stream.result.stats
    assert stats.resumes == 1 and len(tokens) == stats.generated_tokens == 120
    if "temperature" not in options:
        assert tokens == _reference(tiny_target, 120)
    assert all(0 <= t < tiny_target.vocab_size for t in tokens)


async def test_connections_age_out_and_their_streams_resume(tiny_target, tiny_draft):
    """--max-connection-age: the target GOAWAYs old connections (clients re-balance); a stream still
    running after the grace is cut and resumes, with identical greedy output."""
    aging = dataclasses.replace(FAST, max_connection_age_s=0.3, grace_s=0.1)
    target = await start_target(TargetConfig(model="tiny", server=aging), tiny_target)
    orch = OrchestratorConfig(target=target[0].address, tokenizer="tiny", server=FAST,
                              resume=ResumePolicy(max_resumes=50))
    draft = await start_draft(DraftConfig(model="tiny", orchestrator=orch, server=FAST),
                              dataclasses.replace(tiny_draft, eos_token_ids=()))
    try:
        async with AsyncClient(draft.running.address, timeout=T) as client:
            result = await client.generate(prompt_token_ids=PROMPT, max_new_tokens=800, k=2)
        assert list(result.token_ids) == _reference(tiny_target, 800)
        assert result.stats.resumes >= 1
    finally:
        await draft.running.stop()
        await draft.shutdown()
        await stop_target(*target)
