"""Aggregate a `sim sweep` payload per (rate, loss) cell x RTT x policy (with
`bench.sweep_report.summarize`, plus bytes per round, mean k and round-trip p50), render the
Markdown report and write sim_sweep.json / .md and the PNGs. Pure data shaping; no processes, no
timing. Works on a saved sim_sweep.json too (`render(json.load(...))`).
"""

from __future__ import annotations

import json
import pathlib
import statistics
from types import SimpleNamespace

from edgespec.bench.sweep_report import summarize


def cell_key(rate: float, loss: float) -> str:
    return f"rate {rate:g} Mbit/s, loss {loss:g}%" if rate else f"rate unlimited, loss {loss:g}%"


def _extras(runs) -> dict:
    rounds = sum(r.stats["rounds"] for r in runs)
    p50s = [r.stats["round_trip_ms"]["p50"] for r in runs if r.stats["rounds"]]
    return {"bytes_per_round": sum(r.stats["bytes_up"] + r.stats["bytes_down"] for r in runs) / rounds
            if rounds else None,
            "mean_k": sum(r.stats["drafted_tokens"] for r in runs) / rounds if rounds else None,
            "round_trip_ms_p50": statistics.median(p50s) if p50s else None}


def summarize_cells(payload: dict) -> dict[str, dict]:
    """cell key -> bench summary {rtt_ms, policies, table[rtt][label]} with the extras merged in."""
    runs = [SimpleNamespace(**r) for r in payload["runs"]]
    cells: dict[str, dict] = {}
    for rate, loss in dict.fromkeys((r.rate_mbit, r.loss_pct) for r in runs):
        sub = [r for r in runs if (r.rate_mbit, r.loss_pct) == (rate, loss)]
        labels = [label for label in payload["labels"] if any(r.policy == label for r in sub)]
        summary = summarize(sub, labels)
        for rtt, row in summary["table"].items():
            for label, cell in row.items():
                picked = [r for r in sub if str(r.rtt_ms) == rtt and r.policy == label]
                cell.update(_extras(picked))
                if picked[0].acceptance != "exact":
                    cell["parity"] = "n/a (sampled)"
        cells[cell_key(rate, loss)] = summary
    return cells


def baseline_rows(payload: dict) -> list[dict]:
    rows = {}
    for b in payload["baselines"]:
        row = rows.setdefault(b["system"], {"system": b["system"], "tokens": 0, "seconds": 0.0, "parity": 0, "n": 0})
        row["tokens"] += b["tokens"]
        row["seconds"] += b["seconds"]
        row["parity"] += b["parity"]
        row["n"] += 1
    return [{**r, "tokens_per_second": r["tokens"] / r["seconds"] if r["seconds"] else 0.0} for r in rows.values()]


def tau_vs_k(cells: dict[str, dict]) -> list[dict]:
    """(k, tau) of every exact policy in the first cell at its first RTT (k = mean drafted/round)."""
    first = next(iter(cells.values()))
    row = first["table"][str(first["rtt_ms"][0])]
    points = [{"policy": label, "k": c["mean_k"], "tau": c["tau"], "acceptance_rate": (c["tau"] - 1) / c["mean_k"]}
              for label, c in row.items() if c["mean_k"] and c["parity"] != "n/a (sampled)"]
    return sorted(points, key=lambda p: p["k"])


def _num(value, spec: str, suffix: str = "") -> str:
    return "—" if value is None else format(value, spec) + suffix


def _links_md(payload: dict) -> list[str]:
    lines = ["#### Measured links (probe through the same shaping, before each draft starts)", "",
             "| rate | loss/dir asked | RTT asked | TCP RTT p50 (min–max) ms | rate up / down Mbit/s | "
             "loss/dir measured |", "|---|---|---|---|---|---|"]
    for link in payload["links"]:
        rtt = link["tcp_rtt_ms"]
        rate = f"{link['rate_mbit']:g} Mbit/s" if link["rate_mbit"] else "unlimited"
        lines.append(f"| {rate} | {link['loss_pct']:g}% | {link['rtt_ms']:g} ms | {rtt['p50']:.1f} ({rtt['min']:.1f}–"
                     f"{rtt['max']:.1f}) | {link['rate_up_mbit']:.1f} / {link['rate_down_mbit']:.1f} | "
                     f"{link['loss_per_direction_pct']:.2f}% |")
    return lines


def _baselines_md(payload: dict) -> list[str]:
    rows = baseline_rows(payload)
    if not rows:
        return []
    lines = ["#### Local baselines (same prompts, in one process, no network)", "",
             "| system | tokens/s | greedy parity vs HF target-only |", "|---|---|---|"]
    lines += [f"| {r['system']} | {r['tokens_per_second']:.2f} | {r['parity']}/{r['n']} |" for r in rows]
    return lines


def _grid_md(cells: dict[str, dict]) -> list[str]:
    lines = []
    for key, summary in cells.items():
        rtts = [str(r) for r in summary["rtt_ms"]]
        lines += [f"#### tokens/s (time to first token, ms) — {key}", "",
                  "| policy | " + " | ".join(f"RTT {float(r):g} ms" for r in rtts) + " |", "|---|" + "---|" * len(rtts)]
        for label in summary["policies"]:
            cs = [summary["table"][r].get(label) for r in rtts]
            lines.append(f"| {label} | " + " | ".join("—" if c is None else
                         f"{c['tokens_per_second']:.2f} ({c['ttft_ms']:.0f})" for c in cs) + " |")
        lines.append("")
    return lines


def _rounds_md(cells: dict[str, dict]) -> list[str]:
    key, summary = next(iter(cells.items()))
    lines = [f"#### τ · rounds per 100 tokens · bytes per round · round trip p50 ms · greedy parity — {key}", "",
             "| policy | " + " | ".join(f"RTT {r:g} ms" for r in summary["rtt_ms"]) + " |",
             "|---|" + "---|" * len(summary["rtt_ms"])]
    for label in summary["policies"]:
        cs = [summary["table"][str(r)].get(label) for r in summary["rtt_ms"]]
        lines.append(f"| {label} | " + " | ".join("—" if c is None else (
            f"{_num(c['tau'], '.2f')} · {c['rounds_per_100_tokens']:.0f} · "
            f"{_num(c['bytes_per_round'], '.0f', ' B')} · "
            f"{_num(c['round_trip_ms_p50'], '.0f')} · {c['parity']}") for c in cs) + " |")
    return lines


def render(payload: dict) -> str:
    """The Markdown report of a sweep payload."""
    meta, cells = payload["meta"], summarize_cells(payload)
    tau = tau_vs_k(cells)
    lines = [f"### edgespec sim sweep — {meta['model']} ({len(meta['prompts'])} prompts × {meta['max_new_tokens']} "
             f"new tokens, {meta['torch_threads']} torch thread(s) per process, {meta['date']})", "",
             f"Device and edge are two network namespaces joined by a veth pair; link shaping: "
             f"`{meta['mechanism']}` ({payload['links'][0]['shaping']}). Machine: {meta['machine']}. "
             f"Greedy parity reference: {meta['reference']}.", ""]
    lines += _links_md(payload) + [""] + _baselines_md(payload) + [""] + _grid_md(cells) + _rounds_md(cells)
    lines += ["", "#### τ vs k (first cell, first RTT; k = drafted tokens per round)", "",
              "| policy | k | τ | acceptance rate |", "|---|---|---|---|"]
    lines += [f"| {p['policy']} | {p['k']:.2f} | {p['tau']:.2f} | {p['acceptance_rate']:.1%} |" for p in tau]
    return "\n".join(lines) + "\n"


def write_report(payload: dict, out: pathlib.Path) -> list[pathlib.Path]:
    """sim_sweep.json, sim_sweep.md and the PNGs into `out`; prints the Markdown."""
    from edgespec.sim.sweep_plots import plot_all
    out.mkdir(parents=True, exist_ok=True)
    (out / "sim_sweep.json").write_text(json.dumps(payload, indent=1))
    markdown = render(payload)
    (out / "sim_sweep.md").write_text(markdown)
    cells = summarize_cells(payload)
    pngs = plot_all(cells, baseline_rows(payload), tau_vs_k(cells), out)
    print(markdown)
    print(f"wrote {out / 'sim_sweep.json'}, {out / 'sim_sweep.md'}, " + ", ".join(str(p) for p in pngs))
    return [out / "sim_sweep.json", out / "sim_sweep.md", *pngs]
