"""Aggregate `edgespec bench` runs per system and render the Markdown table. Pure data shaping:
no models, no timing, no I/O."""

from __future__ import annotations

import statistics
from collections import defaultdict

REFERENCE = "target-only (HF generate)"


def _parity(runs, reference: dict[str, list[int]]) -> str:
    same = sum(1 for r in runs if r.token_ids == reference.get(r.prompt_id))
    return f"{same}/{len(runs)}"


def _system_row(runs, reference) -> dict:
    tokens = sum(len(r.token_ids) for r in runs)
    seconds = sum(r.seconds for r in runs)
    row = {"prompts": len(runs), "tokens": tokens, "tokens_per_second": tokens / seconds if seconds else 0.0,
           "target_passes_per_token": sum(r.target_forward_passes for r in runs) / max(tokens, 1),
           "greedy_parity": _parity(runs, reference)}
    stats = [r.stats for r in runs if r.stats]
    if stats:
        rounds = sum(s["rounds"] for s in stats)
        drafted = sum(s["drafted_tokens"] for s in stats)
        accepted = sum(s["accepted_tokens"] for s in stats)
        row |= {"tau": (accepted + rounds) / rounds, "acceptance_rate": accepted / max(drafted, 1),
                "overhead_ms_per_round": statistics.fmean(
                    s["round_trip_ms"]["mean"] - s["verify_ms"]["mean"] for s in stats),
                "overhead_ms_p50": statistics.median(s["round_trip_ms"]["p50"] - s["verify_ms"]["p50"] for s in stats),
                "draft_ms_per_round": statistics.fmean(s["draft_ms"]["mean"] for s in stats),
                "draft_ms_per_token": sum(s["draft_ms"]["mean"] * s["rounds"] for s in stats) / max(drafted, 1),
                "verify_ms_per_round": statistics.fmean(s["verify_ms"]["mean"] for s in stats),
                "bytes_per_round": sum(s["bytes_up"] + s["bytes_down"] for s in stats) / rounds}
    return row


def summarize(runs) -> dict:
    """Per-system aggregates, and per-category tokens/s for each system."""
    reference = {r.prompt_id: r.token_ids for r in runs if r.system == REFERENCE}
    by_system, by_cat = defaultdict(list), defaultdict(lambda: defaultdict(list))
    for r in runs:
        by_system[r.system].append(r)
        by_cat[r.system][r.category].append(r)
    return {"systems": {name: _system_row(rs, reference) for name, rs in by_system.items()},
            "categories": {name: {cat: _system_row(rs, reference)["tokens_per_second"] for cat, rs in cats.items()}
                           for name, cats in by_cat.items()}}


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def to_markdown(meta: dict, summary: dict) -> str:
    lines = [f"### edgespec bench — {meta['model']} ({meta['prompts']} prompts, {meta['max_new_tokens']} new "
             f"tokens, greedy, {meta['torch_threads']} torch thread(s), {meta['date']})", "",
             f"target: {meta['target']}; edgespec draft: {meta['draft']}; HF assisted draft: "
             f"{meta.get('hf_draft', meta['draft'])}", "",
             f"the draft runtime alone decodes one token in {_fmt(meta.get('draft_bare_ms_per_token'), '.1f')} ms "
             "(median, before and after the run); `draft ms/token` is what the service spends per drafted token", "",
             "| system | tokens/s | τ (bonus incl.) | acceptance | target passes/token | overhead ms/round "
             "(mean / p50) | draft ms/round | draft ms/token | verify ms/round | bytes/round | greedy parity vs (a) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in summary["systems"].items():
        lines.append(
            f"| {name} | {row['tokens_per_second']:.2f} | {_fmt(row.get('tau'), '.2f')} "
            f"| {_fmt(row.get('acceptance_rate'), '.1%')} | {row['target_passes_per_token']:.2f} "
            f"| {_fmt(row.get('overhead_ms_per_round'), '.2f')} / {_fmt(row.get('overhead_ms_p50'), '.2f')} "
            f"| {_fmt(row.get('draft_ms_per_round'), '.1f')} | {_fmt(row.get('draft_ms_per_token'), '.1f')} "
            f"| {_fmt(row.get('verify_ms_per_round'), '.1f')} | {_fmt(row.get('bytes_per_round'), '.0f')} "
            f"| {row['greedy_parity']} |")
    cats = sorted({c for per in summary["categories"].values() for c in per})
    lines += ["", "tokens/s per category:", "", "| system | " + " | ".join(cats) + " |",
              "|---|" + "---|" * len(cats)]
    for name, per in summary["categories"].items():
        lines.append(f"| {name} | " + " | ".join(f"{per.get(c, 0):.2f}" for c in cats) + " |")
    return "\n".join(lines) + "\n"
