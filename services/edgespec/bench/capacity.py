"""`edgespec bench capacity`: how many devices one target serves. Records real draft runs once
(`capacity_record.py`), then for each N in `--sessions` and each mode — batched (continuous
batching), unbatched (`--max-batch-sessions 1`, one session per forward) and server-only batched
generation (the target generates every token, the vLLM-like baseline) — interleaved, starts a
real gRPC target on the loaded model, runs N simulated devices against it
(`target/fleet.py`) and reads the engine's steps and model-thread CPU. Writes
capacity.json / .md / .png (`capacity_report.py`). Not a test: timing goals live here.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time

MODES = ("batched", "unbatched", "server-only")


def add_capacity_flags(p: argparse.ArgumentParser) -> None:
    """Flags of `edgespec bench capacity` beyond the shared bench flags (--model, --k, --max-new-tokens,
    --prompts, --per-category, --limit, --threads, --runtime, --out)."""
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32],
                   help="capacity: numbers of concurrent devices N")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="capacity: modes to run")
    p.add_argument("--device", default="cpu", help="capacity: the target's device (cpu, cuda, cuda:1)")


def _engine(mode: str, kv_tokens: int):
    from edgespec.models.engine_config import EngineConfig
    return EngineConfig(kv_cache_tokens=kv_tokens, max_batch_sessions=1 if mode == "unbatched" else 64)


async def _cell(target, recordings, mode: str, n: int, max_new: int, kv_tokens: int) -> dict:
    """Start a target for this mode, run N devices against it, stop it; one summary row. Engine
    steps and model CPU count from the moment every device's session is open (prefill excluded)."""
    from edgespec.bench.capacity_report import summarize
    from edgespec.target.config import TargetConfig
    from edgespec.target.fleet import run_devices
    from edgespec.target.serve import start_target, stop_target
    config = TargetConfig(model="loaded", max_sessions=max(n, 16), engine=_engine(mode, kv_tokens))
    running, servicer = await start_target(config, target)
    engine, mark = servicer.engine, {}
    try:
        results, seconds = await run_devices(running.address, recordings, n, max_new, mode == "server-only",
                                             lambda: mark.update(step=engine.step_count, cpu=engine.cpu_s))
        steps = [s for s in engine.steps if s.index >= mark["step"]]
        cpu_s = engine.cpu_s - mark["cpu"]
    finally:
        await stop_target(running, servicer)
    return summarize(mode, n, results, seconds, steps, cpu_s)


def run_capacity(a: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from edgespec.bench.capacity_record import record
    from edgespec.bench.capacity_report import plot, to_markdown
    from edgespec.bench.outputs import write_outputs
    from edgespec.bench.prompts import load_prompts
    from edgespec.models.draft_runtime import DraftRuntimeOptions, load_draft
    from edgespec.models.presets import load_model
    from edgespec.models.prompting import encode_prompt
    torch.set_num_threads(a.threads)
    prompts = load_prompts(a.prompts, per_category=a.per_category)[: a.limit or 8]
    target = load_model(a.model, "target", device=a.device)
    draft = load_draft(a.model, DraftRuntimeOptions(runtime=a.runtime, threads=a.threads))
    k, max_new = a.k[0], a.max_new_tokens
    ids = [encode_prompt(target.tokenizer, p.prompt) for p in prompts]

    async def main() -> tuple[list, list[dict]]:
        recordings = [await record(target, draft, p.id, i, k, max_new)
                      for p, i in tqdm(list(zip(prompts, ids)), desc="record", unit="prompt")]
        kv_tokens = max(a.sessions) * (max(len(i) for i in ids) + max_new + 1)
        await _cell(target, recordings, "batched", 1, max_new, kv_tokens)   # warm-up, not reported
        cells, bar = [], tqdm(total=len(a.sessions) * len(a.modes), desc="capacity", unit="run")
        for n in a.sessions:              # modes interleaved at each N
            for mode in a.modes:
                cells.append(await _cell(target, recordings, mode, n, max_new, kv_tokens))
                bar.set_postfix(N=n, mode=mode, tok_s=f"{cells[-1]['tokens_per_s']:.1f}")
                bar.update()
        bar.close()
        return recordings, cells
    recordings, cells = asyncio.run(main())
    draft.close()
    meta = {"model": a.model, "target": target.name, "draft": draft.name, "prompts": len(prompts), "k": k,
            "max_new_tokens": max_new, "tau": statistics.fmean(r.tau for r in recordings),
            "torch_threads": a.threads, "device": a.device, "torch": torch.__version__,
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}", "date": time.strftime("%Y-%m-%d %H:%M")}
    markdown = to_markdown(meta, cells)
    payload = {"meta": meta, "cells": cells,
               "recordings": [{"prompt_id": r.prompt_id, "prompt_tokens": len(r.prompt_ids), "rounds": len(r.blocks),
                               "tau": r.tau} for r in recordings]}
    wrote = write_outputs(a.out, "capacity", payload, markdown, lambda path: plot(cells, path))
    print(markdown)
    print(wrote)
    return 0
