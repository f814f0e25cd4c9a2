"""`edgespec bench --draft-runtimes`: the draft model on each runtime and format — torch int8
(the preset's HF draft), llama.cpp with the shipped GGUF, and llama.cpp re-quantized (Q8_0, Q4_0)
— measured as a drafter: one-token decode ms, 5-token block ms, and greedy top-1 agreement with
the fp32 target, teacher-forced on the target's own greedy continuation of each bundled prompt.
Variants run interleaved per prompt. Writes draft_runtimes.json / .md. Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import asdict, dataclass

from tqdm import tqdm

from edgespec.bench.outputs import write_outputs

CONTINUATION = 32   # target-greedy tokens per prompt the drafts are scored on
BLOCK = 5


@dataclass(frozen=True)
class Sample:
    variant: str
    prompt_id: str
    decode_ms: float     # median single-token forward (teacher-forced)
    block_ms: float      # one 5-token forward with logits for every position
    agree: int           # positions where the draft's argmax equals the target's
    positions: int


def _variants(model: str) -> dict:
    """Label -> LoadedDraft for every runtime/format the preset has."""
    import shutil
    import tempfile
    from pathlib import Path

    from edgespec.models.draft_runtime import DraftRuntimeOptions, load_draft, torch_draft
    from edgespec.models.presets import PRESETS, load_model
    variants = {"torch int8 (HF draft)": torch_draft(load_model(model, "draft"))}
    source = PRESETS[model].gguf
    if source is None:
        return variants
    shipped = source.cache_dir().parent / f"{source.name}-shipped.gguf"
    if not shipped.is_file():
        with tempfile.TemporaryDirectory() as scratch:
            shutil.copyfile(source.locate(Path(scratch)), shipped)
    options = DraftRuntimeOptions(runtime="llamacpp")
    variants["llama.cpp, the shipped GGUF"] = load_draft(str(shipped), options)
    for quant in ("q8_0", "q4_0"):
        variants[f"llama.cpp {quant.upper()}"] = load_draft(str(source.draft_gguf(quant)), options)
    return variants


def teacher_forced(draft, prompt: list[int], continuation: list[int]) -> tuple[float, list[int], float]:
    """The draft runtime alone, fed `continuation` one token at a time after `prompt`: the median
    ms of one single-token forward, its argmax before each continuation token, and the ms of one
    5-token block fed after the prompt."""
    import torch
    seq = draft.open_sequence(list(prompt), len(prompt) + len(continuation) + BLOCK + 2, False)
    try:
        with torch.inference_mode():
            seq.prefill()
            argmax, times = [], []
            for token in [prompt[-1]] + continuation[:-1]:
                start = time.perf_counter()
                out = seq.feed([token])
                times.append((time.perf_counter() - start) * 1e3)
                argmax.append(int(out.logits[-1].argmax()))
            seq.rollback(len(prompt))
            start = time.perf_counter()
            seq.feed(continuation[:BLOCK])
            block_ms = (time.perf_counter() - start) * 1e3
    finally:
        seq.close()
    return statistics.median(times), argmax, block_ms


def _measure(label: str, draft, prompt_id: str, prompt: list[int], continuation: list[int],
             target_argmax: list[int]) -> Sample:
    decode_ms, argmax, block_ms = teacher_forced(draft, prompt, continuation)
    agree = sum(a == b for a, b in zip(argmax, target_argmax))
    return Sample(label, prompt_id, decode_ms, block_ms, agree, len(target_argmax))


def _summary(samples: list[Sample]) -> dict:
    by: dict[str, list[Sample]] = {}
    for s in samples:
        by.setdefault(s.variant, []).append(s)
    return {label: {"decode_ms": statistics.median(x.decode_ms for x in rows),
                    "block_ms": statistics.median(x.block_ms for x in rows),
                    "agreement": sum(x.agree for x in rows) / sum(x.positions for x in rows)}
            for label, rows in by.items()}


def _markdown(meta: dict, summary: dict) -> str:
    lines = [f"### draft runtimes — {meta['model']} ({meta['prompts']} prompts x {CONTINUATION} target-greedy "
             f"tokens, 1 thread, {meta['date']})", "",
             "| draft runtime | decode ms/token (median) | 5-token block ms | top-1 agreement with fp32 target |",
             "|---|---|---|---|"]
    for label, row in summary.items():
        lines.append(f"| {label} | {row['decode_ms']:.1f} | {row['block_ms']:.1f} | {row['agreement']:.1%} |")
    return "\n".join(lines) + "\n"


def run_draft_runtimes(a: argparse.Namespace) -> int:
    import torch

    from edgespec.bench.baselines import target_only
    from edgespec.bench.prompts import load_prompts
    from edgespec.models.presets import load_model
    from edgespec.models.prompting import encode_prompt
    torch.set_num_threads(a.threads)
    prompts = load_prompts(a.prompts, per_category=a.per_category)[: a.limit]
    target, variants = load_model(a.model, "target"), _variants(a.model)
    samples: list[Sample] = []
    for prompt in tqdm(prompts, desc="draft runtimes", unit="prompt"):
        ids = encode_prompt(target.tokenizer, prompt.prompt)
        continuation = target_only(target.model, ids, CONTINUATION, target.eos_token_ids).token_ids
        with torch.inference_mode():
            logits = target.model(torch.tensor([ids + continuation[:-1]])).logits[0, len(ids) - 1:]
        target_argmax = logits.argmax(-1).tolist()
        for label, draft in variants.items():
            samples.append(_measure(label, draft, prompt.id, ids, continuation, target_argmax))
    summary = _summary(samples)
    meta = {"model": a.model, "target": target.name, "prompts": len(prompts), "date": time.strftime("%Y-%m-%d %H:%M")}
    markdown = _markdown(meta, summary)
    wrote = write_outputs(a.out, "draft_runtimes", {"meta": meta, "summary": summary,
                                                    "samples": [asdict(s) for s in samples]}, markdown)
    print(markdown)
    print(wrote)
    return 0
