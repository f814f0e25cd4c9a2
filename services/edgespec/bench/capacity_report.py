"""Numbers, Markdown and plot of `edgespec bench capacity`: per (mode, N) the aggregate and
per-device committed tokens/s, round latency p50/p99, batch sessions and tokens per engine step,
target model CPU seconds per committed token and the verdict parity of the replay. Pure
formatting of measured results; measuring is `capacity.py`'s.
"""

from __future__ import annotations

import pathlib
import statistics


MODES = {"batched": "batched (continuous batching)", "unbatched": "unbatched (--max-batch-sessions 1)",
         "server-only": "server-only batched generation"}
DRAFT_MODES = {"batched": "batched (edgespec draft --batch)", "unbatched": "unbatched (a private context per session)"}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


def summarize(mode: str, n: int, results: list, seconds: float, steps: list, cpu_s: float) -> dict:
    """One (mode, N) cell from its device results and the engine steps it ran."""
    tokens = sum(r.tokens for r in results)
    latencies = [ms for r in results for ms in r.round_ms]
    verdicts = sum(r.verdicts for r in results)
    return {"mode": mode, "sessions": n, "tokens": tokens, "seconds": seconds,
            "tokens_per_s": tokens / seconds, "per_device_tokens_per_s": statistics.fmean(
                r.tokens / r.seconds for r in results),
            "round_p50_ms": _pct(latencies, 0.5), "round_p99_ms": _pct(latencies, 0.99),
            "steps": len(steps), "batch_sessions": statistics.fmean(s.sessions for s in steps) if steps else 0.0,
            "batch_tokens": statistics.fmean(s.tokens for s in steps) if steps else 0.0,
            "cpu_s_per_token": cpu_s / max(1, tokens),
            "parity": sum(r.same_verdicts for r in results) / verdicts if verdicts else None}


def to_markdown(meta: dict, cells: list[dict]) -> str:
    draft_side = meta.get("side") == "draft"
    lines = [f"# edgespec bench capacity{' --side draft' if draft_side else ''} — {meta['model']}", "",
             f"{meta['target']} target, {meta['draft']} proposals recorded on {meta['prompts']} prompts "
             f"(greedy `exact`, k={meta['k']}, {meta['max_new_tokens']} new tokens, recorded tau "
             f"{meta['tau']:.2f}); torch threads {meta['torch_threads']}; {meta['machine']}; {meta['date']}.",
             DRAFT_HOW if draft_side else TARGET_HOW, "",
             "| mode | N | tok/s (all) | tok/s per device | round p50 ms | round p99 ms | sessions/step "
             f"| tokens/step | {'process' if draft_side else 'target'} CPU ms/token | parity |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in cells:
        parity = "—" if c["parity"] is None else f"{c['parity']:.3f}"
        batch = f"{c['batch_sessions']:.1f} | {c['batch_tokens']:.1f}" if c["steps"] else "— | —"   # no engine
        lines.append(f"| {c['mode']} | {c['sessions']} | {c['tokens_per_s']:.1f} | {c['per_device_tokens_per_s']:.2f} "
                     f"| {c['round_p50_ms']:.0f} | {c['round_p99_ms']:.0f} | {batch} "
                     f"| {c['cpu_s_per_token'] * 1e3:.1f} | {parity} |")
    lines += ["", *_ratios(cells)]
    return "\n".join(lines) + "\n"


TARGET_HOW = ("Devices replay the recorded blocks through the real gRPC target (no draft model runs while "
              "measuring); server-only devices have the target generate every token. Clock starts once every "
              "session is open (prefill excluded). CPU = the engine's model thread. Round = one verify round "
              "(server-only: one token). Parity = replayed verdicts equal to the recorded ones (target alone).")
DRAFT_HOW = ("Devices' sessions propose k-token blocks through the real gRPC Drafter and commit the verdicts "
             "the recorded run got (no target model runs while measuring); batched = `edgespec draft --batch` "
             "(one engine, a llama.cpp sequence per session in one unified KV cache), unbatched = a private context per session on one "
             "model thread. Clock starts once every session is open. CPU = the whole process, clients included. "
             "Round = propose + commit. Parity = proposals equal to the recorded ones: a batched draft's logits move "
             "with the batch (llama.cpp's kernels, up to ~0.6 here), and one flipped near-tie argmax sends a "
             "greedy replay down another path for the rest of its session.")


def _ratios(cells: list[dict]) -> list[str]:
    """Batched vs the two baselines at each N."""
    by = {(c["mode"], c["sessions"]): c for c in cells}
    out = ["| N | batched / unbatched tok/s | batched / server-only tok/s | CPU per token batched / server-only |",
           "|---:|---:|---:|---:|"]
    for n in sorted({c["sessions"] for c in cells}):
        b, u, s = by.get(("batched", n)), by.get(("unbatched", n)), by.get(("server-only", n))
        if b is None:
            continue
        fmt = lambda x, y, key: f"{x[key] / y[key]:.2f}×" if y else "—"  # noqa: E731
        out.append(f"| {n} | {fmt(b, u, 'tokens_per_s')} | {fmt(b, s, 'tokens_per_s')} "
                   f"| {fmt(b, s, 'cpu_s_per_token')} |")
    return out


def plot(cells: list[dict], path: pathlib.Path, side: str = "target") -> None:
    """Aggregate tokens/s, round p99 and CPU per token against N, one line per mode."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right, cpu) = plt.subplots(1, 3, figsize=(15, 4.2))
    for mode, label in (DRAFT_MODES if side == "draft" else MODES).items():
        rows = sorted((c for c in cells if c["mode"] == mode), key=lambda c: c["sessions"])
        if not rows:
            continue
        ns = [c["sessions"] for c in rows]
        left.plot(ns, [c["tokens_per_s"] for c in rows], marker="o", label=label)
        right.plot(ns, [c["round_p99_ms"] for c in rows], marker="o", label=label)
        cpu.plot(ns, [c["cpu_s_per_token"] * 1e3 for c in rows], marker="o", label=label)
    for ax, title in ((left, "aggregate committed tokens/s"), (right, "round latency p99 (ms)"),
                      (cpu, f"{'process' if side == 'draft' else 'target'} CPU ms per committed token")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent devices N")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
