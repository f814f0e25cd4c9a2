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
import functools
import platform
import statistics
import time

MODES = ("batched", "unbatched", "server-only")
DRAFT_MODES = ("batched", "unbatched")   # `--side draft`: `edgespec draft --batch` or private contexts


def add_capacity_flags(p: argparse.ArgumentParser) -> None:
    """Flags of `edgespec bench capacity` beyond the shared bench flags (--model, --k, --max-new-tokens,
    --prompts, --per-category, --limit, --threads, --runtime, --out)."""
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32],
                   help="capacity: numbers of concurrent devices N")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="capacity: modes to run")
    p.add_argument("--device", default="cpu", help="capacity: the target's device (cpu, cuda, cuda:1)")
    p.add_argument("--side", choices=("target", "draft"), default="target",
                   help="capacity: load the target (devices replay recorded proposals) or the draft service "
                   "(devices replay recorded verdicts; batched = `edgespec draft --batch`)")


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


async def _draft_cell(draft, recordings, mode: str, n: int, k: int, max_new: int, kv_tokens: int) -> dict:
    """Start a draft service for this mode, run N devices' sessions against it, stop it; one row.
    CPU is the whole process's (the devices' clients included, the same in both modes)."""
    from edgespec.bench.capacity_report import summarize
    from edgespec.draft.config import DraftConfig
    from edgespec.draft.fleet import run_draft_devices
    from edgespec.draft.serve import start_draft
    from edgespec.models.engine_config import DRAFT_GATHER_SHARE, EngineConfig
    sessions = max(n, 16)
    batch = EngineConfig(kv_cache_tokens=sessions * kv_tokens, gather_share=DRAFT_GATHER_SHARE)
    config = DraftConfig(model="loaded", embed_orchestrator=False, max_sessions=sessions,
                         engine=batch if mode == "batched" else None)
    server, mark = await start_draft(config, draft), {}
    engine = server.engine
    try:
        results, seconds = await run_draft_devices(
            server.running.address, recordings, n, k, max_new,
            lambda: mark.update(step=engine.step_count if engine else 0, cpu=time.process_time()))
        cpu_s = time.process_time() - mark["cpu"]
        steps = [s for s in engine.steps if s.index >= mark["step"]] if engine else []
    finally:
        await server.running.stop()
        await server.shutdown()
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
        if a.side == "draft":    # a session's draft context: prompt, budget, a block and a pre-drafted one
            session_tokens = max(len(i) for i in ids) + max_new + 2 * 32 + 2
            cell = functools.partial(_draft_cell, draft, recordings, k=k, max_new=max_new, kv_tokens=session_tokens)
        else:
            kv_tokens = max(a.sessions) * (max(len(i) for i in ids) + max_new + 1)
            cell = functools.partial(_cell, target, recordings, max_new=max_new, kv_tokens=kv_tokens)
        modes = [m for m in a.modes if a.side == "target" or m in DRAFT_MODES]
        await cell("batched", 1)   # warm-up, not reported
        cells, bar = [], tqdm(total=len(a.sessions) * len(modes), desc="capacity", unit="run")
        for n in a.sessions:              # modes interleaved at each N
            for mode in modes:
                cells.append(await cell(mode, n))
                bar.set_postfix(N=n, mode=mode, tok_s=f"{cells[-1]['tokens_per_s']:.1f}")
                bar.update()
        bar.close()
        return recordings, cells
    recordings, cells = asyncio.run(main())
    draft.close()
    meta = {"side": a.side, "model": a.model, "target": target.name, "draft": draft.name, "prompts": len(prompts),
            "k": k, "max_new_tokens": max_new, "tau": statistics.fmean(r.tau for r in recordings),
            "torch_threads": a.threads, "device": a.device, "torch": torch.__version__,
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}", "date": time.strftime("%Y-%m-%d %H:%M")}
    markdown = to_markdown(meta, cells)
    payload = {"meta": meta, "cells": cells,
               "recordings": [{"prompt_id": r.prompt_id, "prompt_tokens": len(r.prompt_ids), "rounds": len(r.blocks),
                               "tau": r.tau} for r in recordings]}
    name = "capacity" if a.side == "target" else "capacity-draft"
    wrote = write_outputs(a.out, name, payload, markdown, lambda path: plot(cells, path, a.side))
    print(markdown)
    print(wrote)
    return 0
