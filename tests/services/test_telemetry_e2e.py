"""Metrics and the round feed on a real stack (tiny models, gRPC on loopback): the orchestrator's
Prometheus counters equal the SDK's returned stats; error statuses are counted by code; the
feed delivers one event per round; a subscriber that never reads does not stop generation."""

from __future__ import annotations

import asyncio
import threading

import pytest

from edgespec.bench.baselines import target_only
from edgespec.telemetry.feed import FeedSubscriber, RoundEvent
from edgespec.telemetry.options import TelemetryOptions
from edgespec_client import AsyncClient, InvalidArgumentError


def _value(stack, name: str, labels: dict | None = None) -> float:
    value = stack.draft_server.drafter.telemetry.metrics.registry.get_sample_value(name, labels or {})
    return value or 0.0


async def test_metrics_match_sdk_stats(stack, client):
    results = [await client.generate("hello", max_new_tokens=24, k=k) for k in (2, 4)]
    rounds = sum(r.stats.rounds for r in results)
    assert _value(stack, "edgespec_spec_decode_num_drafts_total") == rounds
    assert _value(stack, "edgespec_spec_decode_num_draft_tokens_total") == sum(r.stats.drafted_tokens for r in results)
    accepted = sum(r.stats.accepted_tokens for r in results)
    assert _value(stack, "edgespec_spec_decode_num_accepted_tokens_total") == accepted
    assert _value(stack, "edgespec_generated_tokens_total") == sum(len(r.token_ids) for r in results)
    for position in range(4):
        expected = sum(r.stats.per_position_accepted[position] for r in results
                       if position < len(r.stats.per_position_accepted))
        assert _value(stack, "edgespec_spec_decode_num_accepted_tokens_per_pos_total",
                      {"position": str(position)}) == expected
    assert _value(stack, "edgespec_accepted_length_sum") == accepted + rounds  # tau counts the bonus
    assert _value(stack, "edgespec_requests_total", {"finish_reason": "length"}) == 2
    verify_count = stack.target_servicer.telemetry.metrics.registry.get_sample_value("edgespec_verify_seconds_count")
    assert verify_count == rounds
    assert _value(stack, "edgespec_live_sessions", {"service": "orchestrator"}) == 0


async def test_errors_are_counted_by_status_code(stack, client):
    with pytest.raises(InvalidArgumentError):
        await client.generate("hello", max_new_tokens=8, k=99)
    assert _value(stack, "edgespec_errors_total", {"method": "/edgespec.v1.Orchestrator/Generate",
                                                    "code": "INVALID_ARGUMENT"}) == 1


@pytest.fixture
async def feed_stack(stack_factory):
    return await stack_factory(draft_overrides={"telemetry": TelemetryOptions(feed_publish="tcp://127.0.0.1:0")})


async def test_feed_delivers_one_event_per_round(feed_stack):
    feed = feed_stack.draft_server.drafter.telemetry.feed
    with FeedSubscriber(feed.address) as subscriber:
        async with AsyncClient(feed_stack.draft_address, timeout=60.0) as client:
            for _ in range(50):  # ZMQ's slow joiner: generate until the subscription is live
                first = await client.generate("hello", max_new_tokens=4, k=2)
                if subscriber.receive(0.2) is not None:
                    break
            while subscriber.receive(0.2) is not None:
                pass
            result = await client.generate("hello", max_new_tokens=24, k=3)
        events = []
        while (got := subscriber.receive(1.0)) is not None:
            events.append(got)
    assert first.stats.rounds > 0
    assert len(events) == result.stats.rounds
    assert [e.round for _, e in events] == list(range(result.stats.rounds))
    assert sum(e.accepted for _, e in events) == result.stats.accepted_tokens
    assert sum(e.tokens for _, e in events) == len(result.token_ids)
    assert all(e.rule == "exact" and e.lossless and e.k <= 3 for _, e in events)
    assert len({e.session for _, e in events}) == 1


def _read_feed(address: str, stop: threading.Event, events: list) -> None:
    with FeedSubscriber(address) as reader:
        while not stop.is_set():
            if (got := reader.receive(0.05)) is not None:
                events.append(got[1])


async def test_a_stalled_subscriber_slows_neither_generation_nor_other_subscribers(feed_stack, tiny_target):
    feed = feed_stack.draft_server.drafter.telemetry.feed
    filler = RoundEvent("filler", 0, 1, 0, 1, 0.0, 0.0, 0.0, 0.0, "exact", True, False, 0, 0, 0.0)
    stalled = FeedSubscriber(feed.address, rcvhwm=1)
    stop, events = threading.Event(), []
    reader = threading.Thread(target=_read_feed, args=(feed.address, stop, events), daemon=True)
    reader.start()
    try:
        while stalled.receive(0.01) is None or not events:  # both connected (ZMQ's slow joiner)
            feed.publish(filler)
        for _ in range(50_000):  # ~15 MB: the stalled subscriber's queue and socket buffers fill up
            feed.publish(filler)
        async with AsyncClient(feed_stack.draft_address, timeout=60.0) as client:
            results = [await client.generate("hello", max_new_tokens=48, k=1) for _ in range(2)]
        rounds = sum(r.stats.rounds for r in results)
        for _ in range(200):  # bounded wait for the reader to catch up
            if sum(e.session != "filler" for e in events) >= rounds:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        reader.join(5)
        stalled.close()
    reference = target_only(tiny_target.model, list(results[0].prompt_token_ids), 48,
                            tiny_target.eos_token_ids).token_ids
    assert all(list(r.token_ids) == reference for r in results)  # generation finished, unchanged
    ours = [e for e in events if e.session != "filler"]
    assert len(ours) == rounds  # the reading subscriber missed nothing
    for session in {e.session for e in ours}:
        assert [e.round for e in ours if e.session == session] == list(range(len([e for e in ours if e.session == session])))
