"""`edgespec bench --policy-sweep`: every draft-length policy at every emulated round-trip time.

For each RTT a real target server and a draft server (embedded orchestrator) start as two
processes (`--in-process`: in this one), with a DelayProxy on the draft->target link; each prompt then runs through
every policy in turn (interleaved, so machine noise hits all alike): fixed k, heuristic, AdaEDL,
SVIP, auto, auto + proactive drafting, and the server-only baseline (the target generates alone
and streams back: one round trip in total). Writes sweep.json, sweep.md and sweep.png.
Not a test: timings vary with the machine; the report says what ran where.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import asdict, dataclass

from tqdm import tqdm

from edgespec.bench.outputs import write_outputs


@dataclass(frozen=True)
class SweepPolicy:
    """One column of the sweep: a label and the request fields that select it."""

    label: str
    fields: dict


def sweep_policies(fixed_ks: list[int], k_max: int) -> list[SweepPolicy]:
    fixed = [SweepPolicy(f"fixed k={k}", {"draft_length": "fixed", "k": k}) for k in fixed_ks]
    middle = sorted(fixed_ks)[len(fixed_ks) // 2]
    fixed.append(SweepPolicy(f"fixed k={middle}+proactive", {"draft_length": "fixed", "k": middle, "proactive": True}))
    adaptive = {"heuristic": {"draft_length": "heuristic", "k": 3},
                "adaedl": {"draft_length": "adaedl"}, "svip": {"draft_length": "svip"},
                "auto": {"draft_length": "auto", "k": 3},
                "auto+proactive": {"draft_length": "auto", "k": 3, "proactive": True},
                "server-only": {"draft_length": "server"}}
    return fixed + [SweepPolicy(label, {"k_max": k_max, **f}) for label, f in adaptive.items()]


@dataclass(frozen=True)
class SweepRun:
    rtt_ms: float
    policy: str
    prompt_id: str
    tokens: int
    seconds: float
    ttft_ms: float
    parity: bool
    stats: dict


async def _one_rtt(a, target, draft, rtt_ms, policies, prompts, ids, bar) -> list[SweepRun]:
    from edgespec.bench.run import bench_stack
    from edgespec.net.link import LinkSpec
    runs: list[SweepRun] = []
    max_new = a.max_new_tokens
    async with bench_stack(a, target, draft, LinkSpec(rtt_ms=rtt_ms) if rtt_ms else None) as client:
        await client.generate(prompt_token_ids=ids[0], max_new_tokens=16, draft_length="auto")  # warm-up
        for prompt, prompt_ids in zip(prompts, ids):
            for policy in policies:
                start = time.perf_counter()
                result = await client.generate(prompt_token_ids=prompt_ids, max_new_tokens=max_new, **policy.fields)
                runs.append(SweepRun(rtt_ms, policy.label, prompt.id, len(result.token_ids),
                                     time.perf_counter() - start, result.stats.ttft_ms, False,
                                     result.to_dict()["stats"] | {"token_ids": list(result.token_ids)}))
                bar.update()
    return runs


def _with_parity(runs: list[SweepRun]) -> list[SweepRun]:
    """Greedy parity of every run against server-only generation (= target-only) of its prompt."""
    reference = {(r.rtt_ms, r.prompt_id): r.stats["token_ids"] for r in runs if r.policy == "server-only"}
    return [SweepRun(**{**asdict(r), "parity": r.stats["token_ids"] == reference.get((r.rtt_ms, r.prompt_id))})
            for r in runs]


def run_sweep(a: argparse.Namespace) -> int:
    import torch

    from edgespec.bench.prompts import load_prompts
    from edgespec.bench.sweep_report import plot, summarize, to_markdown
    from edgespec.bench.run import bench_drafts
    from edgespec.models.presets import load_model
    from edgespec.models.prompting import encode_prompt
    torch.set_num_threads(a.threads)
    prompts = load_prompts(a.prompts, per_category=a.per_category)[: a.limit]
    target, (_, draft) = load_model(a.model, "target"), bench_drafts(a)
    ids = [encode_prompt(target.tokenizer, p.prompt) for p in prompts]
    policies = sweep_policies(a.k, a.k_max)
    runs: list[SweepRun] = []
    with tqdm(total=len(a.rtt) * len(prompts) * len(policies), desc="policy sweep", unit="run") as bar:
        for rtt in a.rtt:
            runs += asyncio.run(_one_rtt(a, target, draft, rtt, policies, prompts, ids, bar))
    runs = _with_parity(runs)
    meta = {"model": a.model, "target": target.name, "draft": draft.name, "prompts": len(prompts),
            "max_new_tokens": a.max_new_tokens, "rtt_ms": a.rtt, "torch_threads": a.threads,
            "link": "asyncio DelayProxy on the draft->target link (loopback)", "processes": not a.in_process,
            "date": time.strftime("%Y-%m-%d %H:%M")}
    summary = summarize(runs, [p.label for p in policies])
    markdown = to_markdown(meta, summary)
    wrote = write_outputs(a.out, "sweep", {"meta": meta, "summary": summary, "runs": [asdict(r) for r in runs]},
                          markdown, lambda path: plot(summary, path))
    print(markdown)
    print(wrote)
    return 0
