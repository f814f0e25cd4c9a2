"""`edgespec bench --telemetry`: what observability costs. Two measurements:
1. per round, the telemetry work alone (no model): the core's NullObserver, our observer with
   tracing off (the OpenTelemetry API's no-op tracer; metrics always kept), and with everything
   on (SDK tracer batching to an OTLP trace sink, metrics, the ZMQ feed with a subscriber);
2. end to end, a real loopback stack with telemetry off and one with it all on, prompts
   interleaved (alternating order), greedy, same outputs required.
Writes telemetry.json and telemetry.md. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack

from tqdm import tqdm

from edgespec.bench.outputs import write_outputs
from edgespec.core.observer import NullObserver
from edgespec.core.types import DraftPlan, StepResult
from edgespec.telemetry.span_attrs import SpanAttr

STEP = StepResult(tokens=(1, 2, 3), drafted=3, accepted=2, draft_ms=20.0, verify_ms=30.0, round_trip_ms=35.0,
                  round_ms=60.0, bytes_up=90, bytes_down=40, target_forward_passes=1)


def _per_round_us(observer, rounds: int) -> float:
    plan = DraftPlan(k=3)
    start = time.perf_counter()
    for _ in range(rounds):
        with observer.round(plan) as scope:
            scope.mark("verify_sent")
            scope.mark("verdict_received")
            scope.record(STEP)
    return (time.perf_counter() - start) / rounds * 1e6


def _observer(telemetry):
    observer = telemetry.session(None, {SpanAttr.RULE: "exact"}, "exact", True)
    observer.bind("bench")
    return observer


async def _traced_telemetry(sink_address: str, feed: bool):
    """(provider, target Telemetry, draft Telemetry) with everything on."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from edgespec.telemetry.options import TelemetryOptions
    from edgespec.telemetry.runtime import Telemetry
    provider = TracerProvider(resource=Resource.create({"service.name": "edgespec-bench"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://{sink_address}", insecure=True)))
    options = TelemetryOptions(metrics_listen="127.0.0.1:0", feed_publish="tcp://127.0.0.1:0" if feed else None)
    return provider, Telemetry(TelemetryOptions(metrics_listen="127.0.0.1:0"), provider), Telemetry(options, provider)


def _drain_feed(address: str, stop) -> int:
    """A subscriber that reads every event (run in a thread); returns how many it got."""
    from edgespec.telemetry.feed import FeedSubscriber
    got = 0
    with FeedSubscriber(address) as sub:
        while not stop.is_set():
            got += sub.receive(0.2) is not None
    return got


def _start_sink(tmp: pathlib.Path) -> tuple[subprocess.Popen, str]:
    """`edgespec trace-sink` in its own process (as a collector would be); returns it and its address."""
    ready = tmp / "sink.ready"
    proc = subprocess.Popen([sys.executable, "-m", "edgespec", "trace-sink", "--listen", "127.0.0.1:0",
                             "--out", str(tmp / "spans.jsonl"), "--ready-file", str(ready)],
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("trace-sink did not start")
        time.sleep(0.05)
    return proc, ready.read_text()


async def _measure(a, target, draft, prompts, ids) -> dict:
    import threading

    from edgespec.telemetry.runtime import Telemetry
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        sink, sink_address = _start_sink(pathlib.Path(tmp))
        provider, on_target, on_draft = await _traced_telemetry(sink_address, feed=True)
        stop, received = threading.Event(), []
        reader = threading.Thread(target=lambda: received.append(_drain_feed(on_draft.feed.address, stop)),
                                  daemon=True)
        reader.start()
        try:
            results["per_round_us"] = {
                "core NullObserver": _per_round_us(NullObserver(), a.telemetry_rounds),
                "tracing off (no-op tracer) + metrics": _per_round_us(_observer(Telemetry()), a.telemetry_rounds),
                "tracing + metrics + feed on": _per_round_us(_observer(on_draft), a.telemetry_rounds)}
            results["runs"] = await _end_to_end(a, target, draft, prompts, ids, (on_target, on_draft))
        finally:
            provider.shutdown()  # flushes to the sink, still up
            stop.set()
            reader.join(5)
            sink.terminate()
            sink.wait(30)
        results["feed_events_received"] = received[0] if received else 0
        results["spans_exported"] = sum(1 for _ in open(pathlib.Path(tmp) / "spans.jsonl"))
    return results


async def _end_to_end(a, target, draft, prompts, ids, on) -> list[dict]:
    """Each prompt through the untraced and the traced stack (alternating which goes first)."""
    from edgespec.bench.stack import loopback_stack
    runs: list[dict] = []
    async with AsyncExitStack() as stacks:
        clients = {"off": await stacks.enter_async_context(loopback_stack(target, draft)),
                   "on": await stacks.enter_async_context(loopback_stack(target, draft, telemetry=on))}
        for client in clients.values():  # warm-up
            await client.generate(prompt_token_ids=ids[0], max_new_tokens=8, k=a.k[0])
        for i, (prompt, prompt_ids) in enumerate(tqdm(list(zip(prompts, ids)), desc="telemetry", unit="prompt")):
            for condition in (("off", "on") if i % 2 == 0 else ("on", "off")):
                start = time.perf_counter()
                r = await clients[condition].generate(prompt_token_ids=prompt_ids,
                                                      max_new_tokens=a.max_new_tokens, k=a.k[0])
                runs.append({"condition": condition, "prompt": prompt.id, "seconds": time.perf_counter() - start,
                             "tokens": list(r.token_ids), "rounds": r.stats.rounds})
    return runs


def _summary(results: dict) -> dict:
    runs = results["runs"]
    by = {c: [r for r in runs if r["condition"] == c] for c in ("off", "on")}
    off = {r["prompt"]: r for r in by["off"]}
    parity = all(r["tokens"] == off[r["prompt"]]["tokens"] for r in by["on"])
    cond = {c: {"tokens_per_s": sum(len(r["tokens"]) for r in rs) / sum(r["seconds"] for r in rs),
                "rounds": sum(r["rounds"] for r in rs),
                "ms_per_round": 1e3 * sum(r["seconds"] for r in rs) / max(1, sum(r["rounds"] for r in rs))}
            for c, rs in by.items()}
    ratios = [off[r["prompt"]]["seconds"] / r["seconds"] for r in by["on"]]
    return {"conditions": cond, "median_speed_ratio_on_over_off": statistics.median(ratios), "parity": parity}


def _markdown(meta: dict, results: dict, summary: dict) -> str:
    lines = [f"# Telemetry overhead — {meta['model']}, {meta['prompts']} prompts × {meta['max_new_tokens']} tokens, "
             f"k={meta['k']}, greedy, {meta['date']}", "", "Per round, telemetry work alone "
             f"({meta['rounds']} synthetic rounds):", "", "| observer | µs per round |", "|---|---|"]
    lines += [f"| {name} | {us:.1f} |" for name, us in results["per_round_us"].items()]
    lines += ["", "End to end (loopback gRPC, prompts interleaved):", "",
              "| telemetry | tokens/s | rounds | ms per round |", "|---|---|---|---|"]
    lines += [f"| {c} | {v['tokens_per_s']:.2f} | {v['rounds']} | {v['ms_per_round']:.1f} |"
              for c, v in summary["conditions"].items()]
    lines += ["", f"Median per-prompt speed ratio on/off: {summary['median_speed_ratio_on_over_off']:.3f}; "
              f"identical outputs: {summary['parity']}; spans exported: {results['spans_exported']}; "
              f"feed events received: {results['feed_events_received']}."]
    return "\n".join(lines) + "\n"


def run_telemetry_bench(a: argparse.Namespace) -> int:
    import torch

    from edgespec.bench.prompts import load_prompts
    from edgespec.bench.run import bench_drafts
    from edgespec.models.presets import load_model
    from edgespec.models.prompting import encode_prompt
    torch.set_num_threads(a.threads)
    prompts = load_prompts(a.prompts, per_category=a.per_category)[: a.limit]
    target, (_, draft) = load_model(a.model, "target"), bench_drafts(a)
    ids = [encode_prompt(target.tokenizer, p.prompt) for p in prompts]
    results = asyncio.run(_measure(a, target, draft, prompts, ids))
    summary = _summary(results)
    meta = {"model": a.model, "prompts": len(prompts), "max_new_tokens": a.max_new_tokens, "k": a.k[0],
            "rounds": a.telemetry_rounds, "threads": a.threads, "date": time.strftime("%Y-%m-%d %H:%M")}
    markdown = _markdown(meta, results, summary)
    print(markdown + write_outputs(a.out, "telemetry", {"meta": meta, "summary": summary, **results}, markdown))
    return 0 if summary["parity"] else 1
