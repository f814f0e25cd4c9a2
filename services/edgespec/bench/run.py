"""`edgespec bench`: the bundled prompt set through (a) target-only greedy HF `generate`, (b) HF
assisted generation with the preset's torch draft and the same k (what a transformers user has),
(c) edgespec over loopback gRPC (real target and draft servers in this process, the SDK as
client) with the draft on `--runtime` (default: the preset's, llama.cpp for smollm2), at each
fixed k and each other `--policies` entry. Writes JSON + Markdown.
Not a test: timings vary with the machine; the report says what ran where.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import time
from dataclasses import dataclass

from tqdm import tqdm

from edgespec.bench.outputs import write_outputs
from edgespec.bench.report import REFERENCE


def add_bench_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2", help="preset for both draft and target")
    p.add_argument("--prompts", default=None, help="prompt file (JSONL); default: the bundled set")
    p.add_argument("--per-category", type=int, default=None, help="first N prompts of each category")
    p.add_argument("--limit", type=int, default=None, help="then only the first N prompts")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--k", type=int, nargs="+", default=[3], help="draft length(s) to run")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: one core per model)")
    p.add_argument("--runtime", default=None, help="edgespec's draft runtime: llamacpp or torch "
                   "(default: the preset's)")
    p.add_argument("--draft-model", default=None,
                   help="edgespec's draft model when it differs from --model (e.g. a .gguf file)")
    p.add_argument("--in-process", action="store_true",
                   help="run the target and draft servers in this process (default: two processes)")
    p.add_argument("--policies", nargs="+", default=["fixed"],
                   help="edgespec draft-length policies: fixed runs once per --k, others once each")
    p.add_argument("--vocab-trim", default=None, help="trim file for the draft head (`edgespec vocabtrim build`)")
    p.add_argument("--out", default="bench-results", help="output folder for bench.json / bench.md")
    p.add_argument("--policy-sweep", action="store_true",
                   help="sweep draft-length policies x emulated RTT instead (--k: the fixed ks to include)")
    p.add_argument("--rtt", type=float, nargs="+", default=[0, 10, 25, 50, 100, 200],
                   help="round-trip times (ms) for --policy-sweep")
    p.add_argument("--k-max", type=int, default=8, help="cap of the adaptive policies in --policy-sweep")
    p.add_argument("--quality", action="store_true",
                   help="quality of each acceptance rule vs target-only greedy output instead (--k: the ks)")
    p.add_argument("--answers", type=int, default=None, help="first N exact-answer items for --quality (default all)")
    p.add_argument("--systems", nargs="+", default=None, help="--quality: rule configurations to run (default all)")
    p.add_argument("--telemetry", action="store_true",
                   help="measure telemetry overhead: tracing/metrics/feed off vs on (telemetry.json/.md)")
    p.add_argument("--draft-runtimes", action="store_true",
                   help="the draft on each runtime/format: decode ms, block ms, agreement with the target")
    p.add_argument("--telemetry-rounds", type=int, default=20000, help="--telemetry: synthetic rounds per observer")


@dataclass(frozen=True)
class Run:
    """One system on one prompt."""

    system: str
    prompt_id: str
    category: str
    token_ids: list[int]
    seconds: float
    target_forward_passes: int
    stats: dict | None = None  # edgespec's per-session stats


def _hf_runs(target, draft, prompt, prompt_ids, ks, max_new) -> list[Run]:
    from edgespec.bench.baselines import assisted, target_only
    r = target_only(target.model, prompt_ids, max_new, target.eos_token_ids)
    runs = [Run(REFERENCE, prompt.id, prompt.category, r.token_ids, r.seconds, r.target_forward_passes)]
    for k in ks:
        r = assisted(target.model, draft.model, prompt_ids, max_new, target.eos_token_ids, k)
        runs.append(Run(f"HF assisted k={k}", prompt.id, prompt.category, r.token_ids, r.seconds,
                        r.target_forward_passes))
    return runs


def edgespec_systems(ks: list[int], policies: list[str]) -> dict[str, dict]:
    """System label -> the request fields that select it."""
    systems = {}
    for policy in policies:
        if policy == "fixed":
            systems |= {f"edgespec gRPC k={k}": {"draft_length": "fixed", "k": k} for k in ks}
        else:
            systems[f"edgespec gRPC {policy}"] = {"draft_length": policy, "k": ks[0]}
    return systems


async def _edgespec_runs(client, prompt, prompt_ids, systems: dict[str, dict], max_new) -> list[Run]:
    runs = []
    for label, fields in systems.items():
        start = time.perf_counter()
        result = await client.generate(prompt_token_ids=prompt_ids, max_new_tokens=max_new, **fields)
        runs.append(Run(label, prompt.id, prompt.category, list(result.token_ids),
                        time.perf_counter() - start, result.stats.target_forward_passes,
                        result.to_dict()["stats"]))
    return runs


async def _all_runs(target, hf_draft, draft, prompts, ids, a: argparse.Namespace) -> list[Run]:
    """Every system on each prompt in turn (interleaved, so machine noise hits all alike); the HF
    peers run on this thread while the loopback servers sit idle."""
    runs: list[Run] = []
    systems = edgespec_systems(a.k, a.policies)
    async with bench_stack(a, target, draft) as client:
        await client.generate(prompt_token_ids=ids[0], max_new_tokens=8)  # warm-up
        for prompt, prompt_ids in tqdm(list(zip(prompts, ids)), desc="bench", unit="prompt"):
            runs += _hf_runs(target, hf_draft, prompt, prompt_ids, a.k, a.max_new_tokens)
            runs += await _edgespec_runs(client, prompt, prompt_ids, systems, a.max_new_tokens)
    return runs


def bench_stack(a: argparse.Namespace, target, draft, link=None):
    """The servers edgespec is measured through: two processes (`process_stack`), or this one
    over the loaded models with `--in-process`."""
    from edgespec.bench.stack import loopback_stack, process_stack
    if a.in_process:
        return loopback_stack(target, draft, link)
    return process_stack(a.model, a.runtime, link, a.draft_model, a.vocab_trim)


def bench_drafts(a: argparse.Namespace) -> tuple:
    """(the preset's torch draft, for the HF baselines; edgespec's draft on `--runtime`)."""
    from edgespec.models.draft_runtime import DraftRuntimeOptions, load_draft, torch_draft
    from edgespec.models.presets import load_model
    hf_draft = load_model(a.model, "draft", vocab_trim=a.vocab_trim)
    if a.runtime == "torch" and a.draft_model is None:
        return hf_draft, torch_draft(hf_draft)
    options = DraftRuntimeOptions(runtime=a.runtime, threads=a.threads, vocab_trim=a.vocab_trim)
    return hf_draft, load_draft(a.draft_model or a.model, options)


def run_bench(a: argparse.Namespace) -> int:
    if a.policy_sweep:
        from edgespec.bench.sweep import run_sweep
        return run_sweep(a)
    if a.quality:
        from edgespec.bench.quality import run_quality
        return run_quality(a)
    if a.telemetry:
        from edgespec.bench.telemetry_overhead import run_telemetry_bench
        return run_telemetry_bench(a)
    if a.draft_runtimes:
        from edgespec.bench.draft_runtimes import run_draft_runtimes
        return run_draft_runtimes(a)
    import torch

    from edgespec.bench.draft_runtimes import teacher_forced
    from edgespec.bench.prompts import load_prompts
    from edgespec.bench.report import summarize, to_markdown
    from edgespec.models.presets import load_model
    from edgespec.models.prompting import encode_prompt
    torch.set_num_threads(a.threads)
    prompts = load_prompts(a.prompts, per_category=a.per_category)[: a.limit]
    target = load_model(a.model, "target")
    hf_draft, draft = bench_drafts(a)
    ids = [encode_prompt(target.tokenizer, p.prompt) for p in prompts]
    filler = (ids[0] * 32)[:32]  # any tokens time a forward alike
    bare = [teacher_forced(draft, ids[0], filler)[0]]
    runs = asyncio.run(_all_runs(target, hf_draft, draft, prompts, ids, a))
    bare.append(teacher_forced(draft, ids[0], filler)[0])
    meta = {"model": a.model, "target": target.name, "draft": draft.name, "hf_draft": hf_draft.name,
            "draft_bare_ms_per_token": sum(bare) / 2,
            "prompts": len(prompts),
            "max_new_tokens": a.max_new_tokens, "k": a.k, "torch_threads": a.threads,
            "torch": torch.__version__, "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
            "date": time.strftime("%Y-%m-%d %H:%M")}
    summary = summarize(runs)
    markdown = to_markdown(meta, summary)
    wrote = write_outputs(a.out, "bench", {"meta": meta, "summary": summary, "runs": [r.__dict__ for r in runs]},
                          markdown)
    print(markdown)
    print(wrote)
    return 0
