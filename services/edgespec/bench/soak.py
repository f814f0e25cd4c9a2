"""`edgespec bench soak --minutes M --sessions N`: a long mixed workload (greedy fixed-k, sampled,
`auto`, server-only, client cancellations; `edgespec.suites.soak_workload`) through real target
and draft (+ embedded orchestrator) processes, N concurrent SDK sessions, every greedy output
checked against target-only HF `generate`; each server's RSS, threads and fds sampled over time.
Writes soak.json / .md / .png: errors, correctness, latency, growth after the warm-up.
`--sessions` is shared with `bench capacity` (a list): the soak runs the largest value given.
Exit status 1 on an error, a wrong greedy output or a session left live. Not a test: the
60-second CI run is tests/bench/test_soak.py.
"""

from __future__ import annotations

import argparse
import collections
import platform
import statistics
import time

ROLES = ("target", "draft")


def add_soak_flags(p: argparse.ArgumentParser) -> None:
    """Flags of `edgespec bench soak` beyond the shared ones (--model, --max-new-tokens, --prompts,
    --per-category, --limit, --runtime, --out, and capacity's --sessions: the largest value)."""
    p.add_argument("--minutes", type=float, default=30.0, help="soak: how long the load runs")
    p.add_argument("--sample-every", type=float, default=10.0, help="soak: seconds between RSS/thread/fd samples")
    p.add_argument("--warmup", type=float, default=60.0, help="soak: seconds of warm-up before growth is measured")


def growth(samples: list[dict], warmup_s: float) -> dict[str, dict]:
    """Per process: RSS / threads / fds at the end of the warm-up, their largest value after it,
    and the RSS growth in percent (largest after warm-up vs at its end)."""
    after = [s for s in samples if s["t"] >= warmup_s] or samples[-1:]
    out = {}
    for role in ROLES:
        base = after[0][role]
        peak = {key: max(s[role][key] for s in after) for key in base}
        out[role] = {"at_warmup": base, "max_after": peak, "first": samples[0][role], "last": samples[-1][role],
                     "rss_growth_pct": 100 * (peak["rss_mb"] - base["rss_mb"]) / base["rss_mb"],
                     "threads_growth": peak["threads"] - base["threads"], "fds_growth": peak["fds"] - base["fds"]}
    return out


def summarize(requests: list, samples: list[dict], warmup_s: float) -> dict:
    by_kind = collections.defaultdict(collections.Counter)
    for r in requests:
        by_kind[r.kind][r.status] += 1
    checked = [r for r in requests if r.correct is not None]
    latencies = sorted(r.seconds for r in requests if r.status == "OK")
    errors = collections.Counter(r.status for r in requests if r.status not in ("OK", "CANCELLED"))
    return {"requests": len(requests), "by_kind": {k: dict(v) for k, v in by_kind.items()},
            "errors": dict(errors), "greedy_checked": len(checked), "greedy_correct": sum(r.correct for r in checked),
            "latency_p50_s": statistics.median(latencies) if latencies else None,
            "latency_p99_s": latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
            "max_live": {role: max(s["live"][role] for s in samples) for role in ROLES},
            "live_at_end": samples[-1]["live"], "growth": growth(samples, warmup_s)}


def to_markdown(meta: dict, summary: dict) -> str:
    s, g = summary, summary["growth"]
    lines = [f"### edgespec bench soak — {meta['model']}, {meta['minutes']:g} min × {meta['sessions']} sessions "
             f"({meta['date']})", "",
             f"Mix per 20 requests: 12 greedy k=3, 3 sampled (T=0.8, top-p 0.9), 2 `auto`, 1 server-only, 2 "
             f"cancelled by the client after 2 chunks; {meta['prompts']} prompts, {meta['max_new_tokens']} new tokens; "
             f"target + draft (embedded orchestrator) as two processes; warm-up {meta['warmup_s']:g} s.", "",
             f"- requests: **{s['requests']}**, errors: **{sum(s['errors'].values())}** {s['errors'] or ''}",
             f"- greedy outputs (greedy, auto, server-only) equal to target-only: "
             f"**{s['greedy_correct']}/{s['greedy_checked']}**",
             f"- latency of completed requests: p50 {s['latency_p50_s'] or 0:.2f} s, p99 {s['latency_p99_s'] or 0:.2f} s",
             f"- live sessions: at most {s['max_live']}, at the end {s['live_at_end']}", "",
             "| kind | " + " | ".join(sorted({st for v in s["by_kind"].values() for st in v})) + " |",
             "|---|" + "---|" * len({st for v in s["by_kind"].values() for st in v})]
    statuses = sorted({st for v in s["by_kind"].values() for st in v})
    for kind, counts in sorted(s["by_kind"].items()):
        lines.append(f"| {kind} | " + " | ".join(str(counts.get(st, 0)) for st in statuses) + " |")
    lines += ["", "| process | RSS MiB start → end of warm-up → max after → end | RSS growth after warm-up "
              "| threads (warm-up → max after) | fds (warm-up → max after) |", "|---|---|---|---|---|"]
    for role in ROLES:
        r = g[role]
        lines.append(f"| {role} | {r['first']['rss_mb']:.0f} → {r['at_warmup']['rss_mb']:.0f} → "
                     f"{r['max_after']['rss_mb']:.0f} → {r['last']['rss_mb']:.0f} | {r['rss_growth_pct']:+.1f} % "
                     f"| {r['at_warmup']['threads']} → {r['max_after']['threads']} "
                     f"| {r['at_warmup']['fds']} → {r['max_after']['fds']} |")
    return "\n".join(lines) + "\n"


def plot(samples: list[dict], warmup_s: float, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (rss, counts) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    t = [s["t"] / 60 for s in samples]
    for role in ROLES:
        rss.plot(t, [s[role]["rss_mb"] for s in samples], label=role)
        counts.plot(t, [s[role]["threads"] for s in samples], label=f"{role} threads")
        counts.plot(t, [s[role]["fds"] for s in samples], "--", label=f"{role} fds")
    for ax in (rss, counts):
        ax.axvline(warmup_s / 60, color="grey", lw=0.8, ls=":")
        ax.legend(fontsize=8)
    rss.set_ylabel("RSS (MiB)")
    counts.set_ylabel("count")
    counts.set_xlabel("minutes")
    fig.suptitle("edgespec bench soak: server processes over time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _references(model: str, ids: list[list[int]], max_new: int) -> list[list[int]]:
    """Target-only greedy outputs (HF generate), computed before the servers start."""
    from edgespec.bench.baselines import target_only
    from edgespec.models.presets import load_model
    target = load_model(model, "target")
    return [target_only(target.model, i, max_new, target.eos_token_ids).token_ids for i in ids]


def run_soak(a: argparse.Namespace) -> int:
    import asyncio

    import torch

    from edgespec.bench.outputs import write_outputs
    from edgespec.bench.prompts import load_prompts
    from edgespec.bench.stack import server_processes
    from edgespec.models.presets import load_tokenizer
    from edgespec.models.prompting import encode_prompt
    from edgespec.suites.soak_workload import soak
    torch.set_num_threads(a.threads)
    sessions, seconds = max(a.sessions), a.minutes * 60
    prompts = load_prompts(a.prompts, per_category=a.per_category)[: a.limit or 8]
    tokenizer = load_tokenizer(a.model)
    ids = [encode_prompt(tokenizer, p.prompt) for p in prompts]
    references = _references(a.model, ids, a.max_new_tokens)
    cap = ["--max-sessions", str(max(16, 2 * sessions))]
    draft_args = [*cap, *(["--runtime", a.runtime] if a.runtime else [])]
    with server_processes(a.model, draft_args, cap) as servers:
        requests, samples = asyncio.run(soak(servers.addresses, servers.procs, ids, references, sessions, seconds,
                                             a.sample_every, a.max_new_tokens))
    meta = {"model": a.model, "minutes": a.minutes, "sessions": sessions, "prompts": len(prompts),
            "max_new_tokens": a.max_new_tokens, "warmup_s": a.warmup, "sample_every_s": a.sample_every,
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
            "date": time.strftime("%Y-%m-%d %H:%M")}
    summary = summarize(requests, samples, a.warmup)
    markdown = to_markdown(meta, summary)
    payload = {"meta": meta, "summary": summary, "samples": samples, "requests": [r.to_dict() for r in requests]}
    wrote = write_outputs(a.out, "soak", payload, markdown, lambda path: plot(samples, a.warmup, path))
    print(markdown)
    print(wrote)
    bad = summary["errors"] or summary["greedy_correct"] != summary["greedy_checked"] \
        or any(summary["live_at_end"].values())
    return 1 if bad else 0
