"""Aggregate policy-sweep runs per (RTT, policy), check the goals, render Markdown and the
tokens/s-vs-RTT plot. Pure data shaping plus matplotlib; no models, no timing."""

from __future__ import annotations

import pathlib
from collections import defaultdict


def _cell(runs) -> dict:
    tokens = sum(r.tokens for r in runs)
    seconds = sum(r.seconds for r in runs)
    rounds = sum(r.stats["rounds"] for r in runs)
    accepted = sum(r.stats["accepted_tokens"] for r in runs)
    return {"tokens_per_second": tokens / seconds if seconds else 0.0,
            "tau": (accepted + rounds) / rounds if rounds else None,
            "rounds_per_100_tokens": 100 * rounds / max(tokens, 1),
            "server_token_share": sum(r.stats["server_tokens"] for r in runs) / max(tokens, 1),
            "bytes_per_token": sum(r.stats["bytes_up"] + r.stats["bytes_down"] for r in runs) / max(tokens, 1),
            "ttft_ms": sum(r.ttft_ms for r in runs) / len(runs),
            "parity": f"{sum(r.parity for r in runs)}/{len(runs)}"}


def summarize(runs, labels: list[str]) -> dict:
    cells = defaultdict(list)
    for r in runs:
        cells[(r.rtt_ms, r.policy)].append(r)
    rtts = sorted({r.rtt_ms for r in runs})
    table = {str(rtt): {label: _cell(cells[(rtt, label)]) for label in labels if cells[(rtt, label)]}
             for rtt in rtts}
    return {"rtt_ms": rtts, "policies": labels, "table": table, "goals": _goals(table)}


def _goals(table: dict) -> dict:
    """auto vs the best fixed k and vs server-only; proactive vs plain auto, per RTT."""
    goals = {}
    for rtt, row in table.items():
        rate = {label: cell["tokens_per_second"] for label, cell in row.items()}
        plain = [k for k in rate if k.startswith("fixed") and not k.endswith("+proactive")]
        best_fixed = max((rate[k] for k in plain), default=0.0)
        pro = next((k for k in rate if k.startswith("fixed") and k.endswith("+proactive")), None)
        goals[rtt] = {"auto_vs_best_fixed": rate.get("auto", 0.0) / best_fixed if best_fixed else None,
                      "fixed_proactive_vs_fixed": rate[pro] / rate[pro.removesuffix("+proactive")]
                      if pro and rate.get(pro.removesuffix("+proactive")) else None,
                      "auto_vs_server_only": rate.get("auto", 0.0) / rate["server-only"]
                      if rate.get("server-only") else None,
                      "proactive_vs_auto": rate.get("auto+proactive", 0.0) / rate["auto"] if rate.get("auto") else None}
    return goals


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def to_markdown(meta: dict, summary: dict) -> str:
    rtts = [str(r) for r in summary["rtt_ms"]]
    lines = [f"### policy sweep — {meta['model']} ({meta['prompts']} prompts, {meta['max_new_tokens']} new tokens, "
             f"greedy, {meta['torch_threads']} torch thread(s) per model, {meta['date']})", "",
             f"target: {meta['target']}; draft: {meta['draft']}; link: {meta['link']}", "",
             "tokens/s (τ, rounds per 100 tokens) by round-trip time:", "",
             "| policy | " + " | ".join(f"RTT {r} ms" for r in rtts) + " |", "|---|" + "---|" * len(rtts)]
    for label in summary["policies"]:
        cells = [summary["table"][r].get(label) for r in rtts]
        lines.append(f"| {label} | " + " | ".join(
            "—" if c is None else f"{c['tokens_per_second']:.2f} ({_fmt(c['tau'], '.2f')}, "
            f"{c['rounds_per_100_tokens']:.0f})" for c in cells) + " |")
    lines += ["", "goals (ratios of tokens/s):", "",
              "| RTT ms | auto / best fixed k (≥ 0.95) | auto / server-only (≥ 0.95) | auto+proactive / auto "
              "| fixed+proactive / fixed |", "|---|---|---|---|---|"]
    for r in rtts:
        g = summary["goals"][r]
        lines.append(f"| {r} | {_fmt(g['auto_vs_best_fixed'], '.2f')} | {_fmt(g['auto_vs_server_only'], '.2f')} "
                     f"| {_fmt(g['proactive_vs_auto'], '.2f')} | {_fmt(g['fixed_proactive_vs_fixed'], '.2f')} |")
    lines += ["", "bytes per token, share of tokens generated server-only, greedy parity:", "",
              "| policy | " + " | ".join(f"RTT {r} ms" for r in rtts) + " |", "|---|" + "---|" * len(rtts)]
    for label in summary["policies"]:
        cells = [summary["table"][r].get(label) for r in rtts]
        lines.append(f"| {label} | " + " | ".join(
            "—" if c is None else f"{c['bytes_per_token']:.0f} B, {c['server_token_share']:.0%}, {c['parity']}"
            for c in cells) + " |")
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: pathlib.Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    rtts = summary["rtt_ms"]
    for label in summary["policies"]:
        ys = [summary["table"][str(r)].get(label, {}).get("tokens_per_second") for r in rtts]
        style = {"linestyle": "--", "color": "black"} if label == "server-only" else (
            {"linewidth": 2.5} if label.startswith("auto") else {"alpha": 0.5, "linewidth": 1})
        ax.plot(rtts, ys, marker="o", label=label, **style)
    ax.set_xlabel("round-trip time draft ↔ target (ms)")
    ax.set_ylabel("tokens/s")
    ax.set_title("edgespec: tokens/s vs RTT per draft-length policy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
