"""`edgespec vocabtrim bench`: what VocabTrim buys per preset and trim size N — the draft's time
per token (one forward of one token on a warm KV cache, with and without the per-token q /
entropy / argmax work; median CPU and wall time, sizes interleaved step by step) and greedy tau
at fixed k over bundled prompts, run in-process (LocalDrafter + LocalVerifier +
`core.loop.generate`). Also times the target's 1-token and (k+1)-token forward. Writes
vocabtrim.json + vocabtrim.md.

Not a test: timings vary with the machine. Unless a trim file is given, the trim is calibrated
on the bundled prompts NOT used for tau (held out), so tau is not measured on calibration text.
"""

from __future__ import annotations

import asyncio
import pathlib
import platform
import statistics
import time
from dataclasses import asdict, dataclass

import torch

from edgespec.bench.outputs import write_outputs
from edgespec.bench.prompts import load_prompts
from edgespec.core.draft_length import FixedK
from edgespec.core.loop import generate
from edgespec.core.sampling import entropy, probs_from_logits
from edgespec.core.stats import SpecDecodeStats
from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.types import SamplingParams, SessionSpec
from edgespec.models.kv_sequence import KVSequence
from edgespec.models.local_drafter import LocalDrafter
from edgespec.models.local_verifier import LocalVerifier
from edgespec.models.draft_runtime import torch_draft
from edgespec.models.presets import LoadedModel, load_model
from edgespec.models.prompting import encode_prompt
from edgespec.models.vocabtrim import TrimmedHead, VocabTrim, build_vocab_trim

Case = tuple[torch.nn.Module | None, int, bool]  # (head to install or None, tokens fed, draft post-processing)


@dataclass(frozen=True)
class TrimBenchConfig:
    presets: tuple[str, ...] = ("smollm2", "gemma3")
    sizes: tuple[int, ...] = (4096, 8192, 16384, 0)  # 0: the full vocabulary (no trim)
    trim_file: str | None = None     # else calibrated on the prompts not used for tau
    steps: int = 30                  # timed forwards per measurement (median)
    warmup: int = 5
    context: int = 64                # tokens in the KV cache while timing
    k: int = 4
    per_category: int = 2            # tau prompts: the first N of each category
    max_new_tokens: int = 48         # per tau prompt; 0 skips tau
    calibration_tokens: int = 128    # greedy target tokens per calibration prompt
    threads: int = 1


def _forward(seq: KVSequence, ids: list[int], draft_post: bool) -> None:
    """One forward of `ids` over the cached context, then roll back; with `draft_post`, plus what
    LocalDrafter does per token with the logits row (greedy q, entropy, argmax)."""
    row = seq.feed(ids).logits[-1]
    if draft_post:
        probs_from_logits(row, SamplingParams())
        entropy(row)
        int(row.argmax())
    seq.rollback(len(seq.tokens))


def interleaved_ms(model: torch.nn.Module, context: list[int], cases: dict[str, Case],
                   config: TrimBenchConfig) -> dict[str, dict[str, float]]:
    """Median wall and calling-thread CPU ms of each case over a warm cache of `context`; the
    cases take turns every step, so machine noise hits all of them alike."""
    seq, samples = KVSequence(model, context), {name: [] for name in cases}
    with torch.inference_mode():
        seq.feed(context)
        for rep in range(config.warmup + config.steps):
            for name, (head, n, draft_post) in cases.items():
                if head is not None:
                    model.set_output_embeddings(head)
                wall, cpu = time.perf_counter(), time.thread_time()
                _forward(seq, context[-n:], draft_post)
                if rep >= config.warmup:
                    samples[name].append(((time.perf_counter() - wall) * 1e3, (time.thread_time() - cpu) * 1e3))
    return {name: {"wall_ms": statistics.median(w for w, _ in runs), "cpu_ms": statistics.median(c for _, c in runs)}
            for name, runs in samples.items()}


async def greedy_tau(target: LoadedModel, draft: LoadedModel, prompts: list[list[int]], k: int,
                     max_new_tokens: int) -> dict:
    """tau (bonus included), acceptance and in-process tokens/s of exact-greedy speculation."""
    rounds = accepted = drafted = generated = 0
    draft_ms = seconds = 0.0
    for ids in prompts:
        spec = ResolvedSpec.of(SessionSpec(prompt_ids=tuple(ids), params=SamplingParams(), acceptance="exact",
                                           max_new_tokens=max_new_tokens))
        verifier, drafter = LocalVerifier(target.model, target.vocab_size, spec), LocalDrafter(torch_draft(draft), spec)
        start, stats = time.perf_counter(), SpecDecodeStats()
        await verifier.prefill()
        await drafter.prefill()
        async for step in generate(drafter, verifier, FixedK(k), max_new_tokens, target.eos_token_ids):
            stats.observe(step)
        seconds += time.perf_counter() - start
        rounds, accepted, drafted = rounds + stats.rounds, accepted + stats.accepted_tokens, drafted + stats.drafted_tokens
        generated, draft_ms = generated + stats.generated_tokens, draft_ms + sum(stats.draft_ms)
    return {"tau": (accepted + rounds) / rounds, "acceptance": accepted / drafted,
            "tokens_per_s": generated / seconds, "draft_ms_per_token_in_loop": draft_ms / drafted,
            "rounds": rounds, "generated": generated}


def _trim(preset: str, target: LoadedModel, tau_ids: set[str], config: TrimBenchConfig) -> VocabTrim:
    if config.trim_file is not None:
        return VocabTrim.load(config.trim_file)
    held_out = [p for p in load_prompts() if p.id not in tau_ids]
    ids = [encode_prompt(target.tokenizer, p.prompt) for p in held_out]
    top = min(target.vocab_size, max(config.sizes))
    return build_vocab_trim(target, preset, ids, top, max_new_tokens=config.calibration_tokens,
                            source=f"bundled prompts minus the tau set ({len(held_out)} prompts)")


def _heads(full_head: torch.nn.Linear, trim: VocabTrim, sizes: tuple[int, ...], vocab: int) -> dict[int, torch.nn.Module]:
    """N -> the draft head keeping the top N (N = vocab: the untrimmed head)."""
    kept = sorted({n if 0 < n < vocab else vocab for n in sizes})
    return {n: full_head if n == vocab else TrimmedHead(full_head, trim.top(n).kept_ids) for n in kept}


def _row(n: int, head: torch.nn.Module, draft_ms: dict, target: LoadedModel, draft: LoadedModel,
         tau_prompts: list[list[int]], config: TrimBenchConfig) -> dict:
    row = {"N": n, "head_params": head.weight.numel(), "forward": draft_ms[f"{n} forward"],
           "step": draft_ms[f"{n} step"]}
    if config.max_new_tokens > 0:
        draft.model.set_output_embeddings(head)
        row |= asyncio.run(greedy_tau(target, draft, tau_prompts, config.k, config.max_new_tokens))
    return row


def bench_preset(preset: str, config: TrimBenchConfig) -> dict:
    """Target timings, then one row per trim size (the draft's head swapped in place, restored)."""
    target, draft = load_model(preset, "target"), load_model(preset, "draft")
    tau_set = load_prompts(per_category=config.per_category)
    tau_prompts = [encode_prompt(target.tokenizer, p.prompt) for p in tau_set]
    context = (tau_prompts[0] * config.context)[: config.context]
    trim = _trim(preset, target, {p.id for p in tau_set}, config)
    full_head, k = draft.model.get_output_embeddings(), config.k
    heads = _heads(full_head, trim, config.sizes, draft.vocab_size)
    target_ms = interleaved_ms(target.model, context, {"1 token": (None, 1, False),
                                                       f"{k + 1} tokens": (None, k + 1, False)}, config)
    try:
        draft_ms = interleaved_ms(draft.model, context, {f"{n} {kind}": (head, 1, kind == "step")
                                                         for n, head in heads.items() for kind in ("forward", "step")}, config)
        rows = [_row(n, head, draft_ms, target, draft, tau_prompts, config) for n, head in heads.items()]
    finally:
        draft.model.set_output_embeddings(full_head)
    meta = {"target": target.name, "draft": draft.name, "vocab_size": draft.vocab_size, "target_ms": target_ms,
            "trim": dict(trim.build), "tau_prompts": len(tau_prompts)}
    return {"meta": meta, "rows": rows}


def to_markdown(preset: str, result: dict, config: TrimBenchConfig) -> str:
    meta, k = result["meta"], config.k
    one, block = meta["target_ms"]["1 token"], meta["target_ms"][f"{k + 1} tokens"]
    lines = [f"### {preset}: target {meta['target']}; draft {meta['draft']}", "",
             f"target forward, CPU ms (wall ms): 1 token {one['cpu_ms']:.1f} ({one['wall_ms']:.1f}), "
             f"{k + 1} tokens {block['cpu_ms']:.1f} ({block['wall_ms']:.1f}); KV cache of {config.context} "
             f"tokens. Trim calibrated on: {meta['trim'].get('prompts', '?')}", "",
             "| N | head params | draft forward ms/token, CPU (wall) | + q, entropy, argmax | "
             f"τ (k={k}, bonus incl.) | acceptance | in-loop draft ms/token | in-process tok/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        tau = (f"{r['tau']:.2f} | {r['acceptance']:.1%} | {r['draft_ms_per_token_in_loop']:.1f} | "
               f"{r['tokens_per_s']:.2f}") if "tau" in r else "— | — | — | —"
        label = f"{r['N']} (full)" if r["N"] == meta["vocab_size"] else str(r["N"])
        lines.append(f"| {label} | {r['head_params'] / 1e6:.1f} M | {r['forward']['cpu_ms']:.1f} "
                     f"({r['forward']['wall_ms']:.1f}) | {r['step']['cpu_ms']:.1f} | {tau} |")
    return "\n".join(lines) + "\n"


def run_vocabtrim_bench(config: TrimBenchConfig, out_dir: str | pathlib.Path) -> str:
    """Run every preset in `config`; write vocabtrim.json + vocabtrim.md into `out_dir`."""
    torch.set_num_threads(config.threads)
    results = {preset: bench_preset(preset, config) for preset in config.presets}
    header = (f"VocabTrim: {config.per_category} prompts/category x {config.max_new_tokens} tokens, greedy, "
              f"k={config.k}; timings: medians of {config.steps} interleaved steps, CPU time of the calling thread (wall in parentheses); torch {torch.__version__}, "
              f"{platform.machine()}, {config.threads} thread(s), {time.strftime('%Y-%m-%d %H:%M')}\n\n")
    markdown = header + "\n".join(to_markdown(p, r, config) for p, r in results.items())
    wrote = write_outputs(out_dir, "vocabtrim", {"config": asdict(config), "results": results}, markdown)
    return markdown + f"\n{wrote}\n"
