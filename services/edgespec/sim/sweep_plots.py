"""PNG plots of a `sim sweep` (matplotlib, Agg): tokens/s and time to first token vs RTT (one
panel per (rate, loss) cell, local baselines as horizontal lines), and τ vs k, rounds per 100
tokens and bytes per round. Input is `sweep_report`'s aggregates; nothing is computed here.
"""

from __future__ import annotations

import pathlib


def _style(label: str) -> dict:
    if label.startswith("server-only"):
        return {"linestyle": "--", "color": "black"}
    if label.startswith("auto"):
        return {"linewidth": 2.5}
    return {"linewidth": 1.2, "alpha": 0.8}


def _lines(ax, summary: dict, metric: str, labels: list[str]) -> None:
    rtts = summary["rtt_ms"]
    for label in labels:
        ys = [summary["table"][str(r)].get(label, {}).get(metric) for r in rtts]
        if any(y is not None for y in ys):
            ax.plot(rtts, [float("nan") if y is None else y for y in ys], marker="o", label=label, **_style(label))
    ax.set_xlabel("RTT device ↔ edge (ms)")
    ax.grid(alpha=0.3)


def _main_labels(summary: dict) -> list[str]:
    """Policies present at every RTT (the k-scan ks ran at one RTT only: left to the τ plot)."""
    return [label for label in summary["policies"] if all(label in row for row in summary["table"].values())]


def _grid(plt, cells: dict[str, dict], metric: str, ylabel: str, title: str, baselines: list[dict]):
    n = len(cells)
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.2 * rows), squeeze=False, sharey=True)
    for ax, (key, summary) in zip(axes.flat, cells.items()):
        _lines(ax, summary, metric, _main_labels(summary))
        for i, b in enumerate(baselines):
            ax.axhline(b["tokens_per_second"], linestyle=":", color=f"C{7 + i}", label=b["system"])
        ax.set_title(key, fontsize=10)
        ax.set_ylabel(ylabel)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _rounds_and_bytes(plt, cells: dict[str, dict], tau: list[dict]):
    key, summary = next(iter(cells.items()))
    fig, (ax_tau, ax_rounds, ax_bytes) = plt.subplots(1, 3, figsize=(16, 4.5))
    fixed = [p for p in tau if p["policy"].startswith("fixed k=")]
    ax_tau.plot([p["k"] for p in fixed], [p["tau"] for p in fixed], marker="o", label="fixed k")
    for p in tau:
        if not p["policy"].startswith("fixed k="):
            ax_tau.scatter([p["k"]], [p["tau"]], s=60, label=f"{p['policy']} (mean k)", zorder=3)
    ks = [p["k"] for p in tau] or [1]
    ax_tau.plot([0, max(ks)], [1, max(ks) + 1], linestyle=":", color="grey", label="τ = k + 1 (all accepted)")
    ax_tau.set(xlabel="k (drafted tokens per round)", ylabel="τ (tokens per round, bonus incl.)",
               title="τ vs k")
    ax_tau.grid(alpha=0.3)
    ax_tau.legend(fontsize=7)
    labels = [label for label in _main_labels(summary) if not label.startswith("server-only")]  # no rounds
    _lines(ax_rounds, summary, "rounds_per_100_tokens", labels)
    ax_rounds.set(ylabel="rounds per 100 tokens", title=f"rounds per 100 tokens — {key}")
    _lines(ax_bytes, summary, "bytes_per_round", labels)
    ax_bytes.set(ylabel="bytes per round (up + down)", title=f"bytes per round — {key}")
    ax_bytes.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_all(cells: dict[str, dict], baselines: list[dict], tau: list[dict], out: pathlib.Path) -> list[pathlib.Path]:
    """Write sim_tokens_per_s.png, sim_ttft.png and sim_tau_rounds_bytes.png into `out`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figures = {
        "sim_tokens_per_s.png": _grid(plt, cells, "tokens_per_second", "tokens/s",
                                      "edgespec sim: tokens/s vs RTT (dotted: local baselines, no network)",
                                      baselines),
        "sim_ttft.png": _grid(plt, cells, "ttft_ms", "time to first token (ms)",
                              "edgespec sim: time to first token vs RTT", []),
        "sim_tau_rounds_bytes.png": _rounds_and_bytes(plt, cells, tau),
    }
    paths = []
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        paths.append(out / name)
    return paths
