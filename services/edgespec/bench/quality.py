"""`edgespec bench --quality`: what each acceptance rule does to output quality, measured against
target-only greedy output on the bundled prompts and on a small exact-answer set. Runs the rules
over loopback gRPC (real target and draft servers, the SDK as client, so bytes are real), the
references in process: target greedy, target samples at temperature 0.3 (edgespec `rejection`,
which follows p exactly: the natural-variation ceiling of the similarity scale) and draft-only
greedy (its floor). Scoring and rendering live in `quality_report`; this module only runs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.resources
import json
import time
from dataclasses import asdict, dataclass

from tqdm import tqdm

from edgespec.bench.outputs import write_outputs

# name -> (rule, acceptance_params); every one runs at each --k
SYSTEMS: dict[str, tuple[str, dict]] = {
    "exact": ("exact", {}),
    "fly": ("fly", {}),
    "fly W=3": ("fly", {"window": 3}),
    "dropmatch naive": ("dropmatch", {"dropout_criterion": "naive"}),
    "dropmatch js": ("dropmatch", {"dropout_criterion": "js"}),
    "semantic": ("semantic", {}),
    "semantic mismatch-first": ("semantic", {"semantic_upload": "mismatch-first"}),
}
REFERENCES = ("target greedy", "target T=0.3", "draft greedy")
SAMPLE_TEMPERATURE = 0.3
ANSWER_TOKENS = 16


@dataclass(frozen=True)
class Item:
    """A prompt to run: a bench prompt (answer None) or an exact-answer question."""

    id: str
    kind: str            # bench category, or "answer:<kind>"
    prompt: str
    answer: str | None = None


@dataclass(frozen=True)
class Output:
    """One system's output on one item."""

    system: str
    k: int               # 0 for the references
    item: str
    prompt_ids: list[int]
    token_ids: list[int]
    stats: dict | None = None


def load_answers(limit: int | None = None) -> list[Item]:
    """The bundled exact-answer set (capitals, arithmetic, copying, extraction)."""
    text = importlib.resources.files("edgespec.bench").joinpath("exact_answers.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [Item(r["id"], f"answer:{r['kind']}", r["prompt"], r["answer"]) for r in rows][:limit]


def _references(target, draft, item: Item, ids: list[int], n: int) -> list[Output]:
    """Target greedy (every item); draft-only greedy, the similarity floor (bench prompts)."""
    from edgespec.bench.baselines import target_only
    outs = [Output("target greedy", 0, item.id, ids, target_only(target.model, ids, n, target.eos_token_ids).token_ids)]
    if item.answer is None:
        outs.append(Output("draft greedy", 0, item.id, ids,
                           target_only(draft.model, ids, n, target.eos_token_ids).token_ids))
    return outs


async def _item_runs(client, item: Item, ids: list[int], n: int, ks: list[int], seed: int,
                     systems: dict[str, tuple[str, dict]]) -> list[Output]:
    outs = []
    if item.answer is None:  # natural variation of the target, the similarity scale's ceiling
        result = await client.generate(prompt_token_ids=ids, max_new_tokens=n, k=ks[0], acceptance="rejection",
                                       temperature=SAMPLE_TEMPERATURE, seed=seed)
        outs.append(Output("target T=0.3", 0, item.id, ids, list(result.token_ids), result.to_dict()["stats"]))
    for k in ks:
        for name, (rule, params) in systems.items():
            if item.answer is not None and params.get("semantic_upload") == "mismatch-first":
                continue  # same tokens as `semantic`; bytes are measured on the bench prompts
            result = await client.generate(prompt_token_ids=ids, max_new_tokens=n, k=k, acceptance=rule,
                                           acceptance_params=params)
            outs.append(Output(name, k, item.id, ids, list(result.token_ids), result.to_dict()["stats"]))
    return outs


async def _all_outputs(target, hf_draft, draft, items: list[Item], ids: list[list[int]],
                       a: argparse.Namespace) -> list[Output]:
    """`hf_draft` (torch) gives the draft-only floor; edgespec drafts with `draft`."""
    from edgespec.bench.stack import loopback_stack
    outputs: list[Output] = []
    async with loopback_stack(target, draft) as client:
        for seed, (item, prompt_ids) in enumerate(tqdm(list(zip(items, ids)), desc="quality", unit="item")):
            n = a.max_new_tokens if item.answer is None else ANSWER_TOKENS
            outputs += _references(target, hf_draft, item, prompt_ids, n)
            outputs += await _item_runs(client, item, prompt_ids, n, a.k, seed, _systems(a.systems))
    return outputs


def _systems(names: list[str] | None) -> dict[str, tuple[str, dict]]:
    unknown = sorted(set(names or ()) - set(SYSTEMS))
    if unknown:
        raise ValueError(f"--systems: unknown {unknown}; known: {sorted(SYSTEMS)}")
    return {name: SYSTEMS[name] for name in SYSTEMS if not names or name in names}


def run_quality(a: argparse.Namespace) -> int:
    import torch

    from edgespec.bench.embedding import SentenceEmbedder
    from edgespec.bench.prompts import load_prompts
    from edgespec.bench.quality_report import plot, score, summarize, to_markdown
    from edgespec.bench.run import bench_drafts
    from edgespec.models.presets import load_model
    from edgespec.models.prompting import encode_prompt
    torch.set_num_threads(a.threads)
    embedder = SentenceEmbedder()  # fail before the long run if the model is missing
    prompts = [Item(p.id, p.category, p.prompt) for p in load_prompts(a.prompts, per_category=a.per_category)]
    items = prompts + load_answers(a.answers)
    target, (hf_draft, draft) = load_model(a.model, "target"), bench_drafts(a)
    ids = [encode_prompt(target.tokenizer, item.prompt) for item in items]
    outputs = asyncio.run(_all_outputs(target, hf_draft, draft, items, ids, a))
    scored = score(outputs, {i.id: i for i in items}, target, embedder)
    summary = summarize(scored)
    meta = {"model": a.model, "target": target.name, "draft": draft.name, "prompts": len(prompts),
            "answers": len(items) - len(prompts), "max_new_tokens": a.max_new_tokens, "k": a.k,
            "systems": _systems(a.systems), "date": time.strftime("%Y-%m-%d %H:%M")}
    markdown = to_markdown(meta, summary)
    wrote = write_outputs(a.out, "quality", {"meta": meta, "summary": summary,
                                             "outputs": [asdict(o) for o in scored]},
                          markdown, lambda path: plot(summary, path))
    print(markdown)
    print(wrote)
    return 0
