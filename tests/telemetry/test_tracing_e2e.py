"""Traces across two real processes: the target runs as a subprocess exporting with the stock
OTLP exporter to our trace sink; this process (draft + embedded orchestrator + SDK) records into
an in-memory exporter. One trace id spans SDK -> session -> round -> draft / verify, and every
`verify` span (target process) is parented by a `round` span (this process)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from edgespec.draft.config import DraftConfig
from edgespec.draft.serve import start_draft
from edgespec.models.draft_runtime import torch_draft
from edgespec.models.presets import load_model
from edgespec.orchestrator.config import OrchestratorConfig
from edgespec.rpc.server import ServerOptions
from edgespec.telemetry.trace_sink import start_sink
from edgespec_client import AsyncClient

FAST = ServerOptions(listen="127.0.0.1:0", grace_s=0.5, keepalive_time_s=1.0, keepalive_timeout_s=1.0)


@pytest.fixture(scope="module")
def memory_spans():
    """This process's tracer provider (OTel allows one per process): everything in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "edgespec-draft"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    exporter.shutdown()  # later tests' spans are dropped, not kept


def _start_target(tmp_path, sink_address: str) -> tuple[subprocess.Popen, str]:
    ready = tmp_path / "target.ready"
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{sink_address}", "OTEL_EXPORTER_OTLP_INSECURE": "true",
           "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "edgespec-target"}
    proc = subprocess.Popen([sys.executable, "-m", "edgespec", "target", "--model", "tiny", "--listen", "127.0.0.1:0",
                             "--ready-file", str(ready), "--grace", "0.5"], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"target did not start: {proc.communicate()[1][-2000:]}")
        time.sleep(0.1)
    return proc, ready.read_text()


async def test_one_trace_across_processes(tmp_path, memory_spans):
    spans_path = tmp_path / "spans.jsonl"
    with open(spans_path, "a", encoding="utf-8") as out:
        sink, _ = await start_sink(out, "127.0.0.1:0")
        proc, target_address = _start_target(tmp_path, sink.address)
        try:
            orch = OrchestratorConfig(target=target_address, tokenizer="tiny", server=FAST)
            draft = await start_draft(DraftConfig(model="tiny", orchestrator=orch, server=FAST),
                                      torch_draft(load_model("tiny", "draft")))
            try:
                async with AsyncClient(draft.running.address, timeout=60.0) as client:
                    result = await client.generate("hello", max_new_tokens=24, k=3)
            finally:
                await draft.running.stop()
                await draft.shutdown()
        finally:
            proc.send_signal(signal.SIGTERM)  # the target flushes its batched spans on shutdown
            assert await asyncio.to_thread(proc.wait, 60) == 0  # (the sink answers on this loop meanwhile)
        await sink.stop()
    local = memory_spans.get_finished_spans()
    remote = [json.loads(line) for line in spans_path.read_text().splitlines()]

    generate = [s for s in local if s.name == "generate"]
    assert len(generate) == 1
    trace_id = generate[0].context.trace_id
    by_name = {name: [s for s in local if s.name == name and s.context.trace_id == trace_id]
               for name in ("session", "round", "draft")}
    session, rounds = by_name["session"], by_name["round"]
    assert len(session) == 1 and session[0].parent.span_id == generate[0].context.span_id
    assert len(rounds) == result.stats.rounds + (result.stats.server_tokens > 0)
    assert all(r.parent.span_id == session[0].context.span_id for r in rounds)
    round_ids = {f"{r.context.span_id:016x}" for r in rounds}
    assert all(f"{d.parent.span_id:016x}" in round_ids for d in by_name["draft"]) and by_name["draft"]

    assert "/edgespec.v1.Verifier/Session" in {s["name"] for s in remote}  # gRPC instrumentation: per RPC
    verify = [s for s in remote if s["name"] == "verify"]
    assert verify and {s["service"] for s in verify} == {"edgespec-target"}
    assert {s["trace_id"] for s in verify} == {f"{trace_id:032x}"}
    assert len(verify) == len(rounds) and {s["parent_span_id"] for s in verify} == round_ids  # one per round

    attrs = [dict(r.attributes) for r in rounds]
    assert sum(a["edgespec.k"] for a in attrs) == result.stats.drafted_tokens
    assert sum(a["edgespec.accepted"] for a in attrs) == result.stats.accepted_tokens
    assert sum(a["edgespec.tokens"] for a in attrs) == len(result.token_ids)
    assert {a["edgespec.rule"] for a in attrs} == {"exact"} and all(a["edgespec.lossless"] for a in attrs)
    assert all(a["edgespec.bytes_up"] > 0 and a["edgespec.bytes_down"] > 0 and a["net.rtt_ms"] >= 0 for a in attrs)
    assert sorted(a["edgespec.round"] for a in attrs) == list(range(len(rounds)))
    events = {e.name for r in rounds for e in r.events}
    assert {"verify_sent", "verdict_received"} <= events
    by_id = {s["parent_span_id"]: s for s in verify}
    for r in rounds:  # the target's numbers match what the orchestrator recorded for the round
        v = by_id[f"{r.context.span_id:016x}"]
        assert v["attributes"]["edgespec.accepted"] == r.attributes["edgespec.accepted"]
        assert v["attributes"]["edgespec.round"] >= 0 and v["start_ns"] <= v["end_ns"]


async def test_remote_draft_service_spans_join_the_round(memory_spans):
    """Standalone orchestrator + separate draft service: the `draft` span, made by the draft
    service from the ProposeRequest's trace context, is a child of the orchestrator's round."""
    from edgespec.orchestrator.serve import start_orchestrator
    from edgespec.target.config import TargetConfig
    from edgespec.target.serve import start_target, stop_target
    from edgespec.telemetry.runtime import Telemetry
    memory_spans.clear()
    target_running, target_servicer = await start_target(TargetConfig(model="tiny", server=FAST),
                                                         load_model("tiny", "target"))
    draft = await start_draft(DraftConfig(model="tiny", embed_orchestrator=False, server=FAST),
                              torch_draft(load_model("tiny", "draft")))
    config = OrchestratorConfig(target=target_running.address, draft=draft.running.address, tokenizer="tiny",
                                server=FAST)
    telemetry = Telemetry()
    orchestrator, channels = await start_orchestrator(config, telemetry)
    try:
        async with AsyncClient(orchestrator.address, timeout=60.0) as client:
            result = await client.generate("hello", max_new_tokens=16, k=2)
    finally:
        await orchestrator.stop()
        for channel in channels:
            await channel.close()
        telemetry.close()
        await draft.running.stop()
        await draft.shutdown()
        await stop_target(target_running, target_servicer)
    spans = memory_spans.get_finished_spans()
    rounds = {s.context.span_id for s in spans if s.name == "round"}
    drafts = [s for s in spans if s.name == "draft"]
    verify = [s for s in spans if s.name == "verify"]
    assert len(rounds) == result.stats.rounds and len(verify) == len(rounds)
    assert drafts and all(s.parent.span_id in rounds and s.parent.is_remote for s in drafts)
    assert {s.parent.span_id for s in verify} == rounds
    assert len({s.context.trace_id for s in spans if s.name in ("round", "draft", "verify")}) == 1
