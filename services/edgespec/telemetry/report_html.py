"""The trace report as one self-contained HTML page: a summary table of the sessions, then per session
a figure (round timeline as stacked time-split bars, acceptance per draft position, RTT and k over the
rounds) embedded as a base64 PNG, and the per-round table. No scripts, no external URLs, no files
beside it. Renders analysed SessionReports; it does no analysis of its own beyond formatting.
"""

from __future__ import annotations

import base64
import datetime
import html
import io

from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from edgespec.telemetry.round_rows import PART_LABELS, RoundRow, SessionReport
from edgespec.telemetry.span_attrs import SpanAttr

COLOURS = {"draft": "#4c72b0", "uplink": "#dd8452", "queue": "#c44e52", "verify": "#55a868",
           "downlink": "#8172b3", "network": "#937860"}
CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; } td.text, th.text { text-align: left; }
td.text { overflow-wrap: anywhere; max-width: 20em; }
img { max-width: 100%; height: auto; } .note { color: #555; font-size: 0.9em; } code { font-size: 0.95em; }
"""
SUMMARY_COLUMNS = ("session", "trace id", "services seen", "rounds", "server-only runs", "tokens",
                   "τ (tokens/round)", "acceptance", "mean k", "mean RTT ms", "finish reason")
ROUND_COLUMNS = ("round", "mode", "k", "accepted", "tokens", "round ms", *PART_LABELS.values(),
                 SpanAttr.NET_RTT_MS, "bytes up", "bytes down")


def _fmt(value, spec: str = "") -> str:
    return "—" if value is None else format(value, spec)


def _row(cells, text_columns: int = 0) -> str:
    return "<tr>" + "".join(f'<td class="text">{html.escape(str(c))}</td>' if i < text_columns
                            else f"<td>{html.escape(str(c))}</td>" for i, c in enumerate(cells)) + "</tr>"


def _head(columns, text_columns: int = 0) -> str:
    return "<tr>" + "".join(f'<th class="text">{html.escape(c)}</th>' if i < text_columns
                            else f"<th>{html.escape(c)}</th>" for i, c in enumerate(columns)) + "</tr>"


def _acceptance_rate(s: SessionReport) -> float | None:
    rows = [r for r in s.speculative if r.k and r.accepted is not None]
    drafted = sum(r.k for r in rows)
    return sum(r.accepted for r in rows) / drafted if drafted else None


def _mean_k(s: SessionReport) -> float | None:
    ks = [r.k for r in s.speculative if r.k is not None]
    return sum(ks) / len(ks) if ks else None


def summary_table(sessions: list[SessionReport]) -> str:
    rows = [_row((s.session, ", ".join(s.trace_ids), ", ".join(s.services), len(s.speculative), s.server_runs,
                  s.tokens, _fmt(s.tau, ".2f"), _fmt(_acceptance_rate(s), ".1%"), _fmt(_mean_k(s), ".1f"),
                  _fmt(s.mean_rtt_ms, ".1f"), s.attributes.get(SpanAttr.FINISH_REASON, "—")), 3)
            for s in sessions]
    return f'<table id="sessions">{_head(SUMMARY_COLUMNS, 3)}{"".join(rows)}</table>'


def _round_cells(r: RoundRow) -> tuple:
    return (r.index, "server-only" if r.server else "speculative", _fmt(r.k), _fmt(r.accepted), _fmt(r.tokens),
            f"{r.duration_ms:.2f}", *(_fmt(r.split_ms.get(part), ".2f") for part in PART_LABELS),
            _fmt(r.rtt_ms, ".2f"), _fmt(r.bytes_up), _fmt(r.bytes_down))


def _timeline(ax, rounds: tuple[RoundRow, ...]) -> None:
    x = [r.index for r in rounds]
    bottom = [0.0] * len(rounds)
    for part, label in PART_LABELS.items():
        heights = [r.split_ms.get(part, 0.0) for r in rounds]
        if any(heights):
            bars = ax.bar(x, heights, bottom=bottom, color=COLOURS[part], label=label, width=0.8)
            for bar, r in zip(bars, rounds):
                bar.set_hatch("//" if r.server else None)  # server-only runs
            bottom = [b + h for b, h in zip(bottom, heights)]
    ax.scatter(x, [r.duration_ms for r in rounds], marker="_", s=160, color="black", zorder=3,
               label="round wall time")
    ax.set_xlabel(f"round ({SpanAttr.ROUND})")
    ax.set_ylabel("ms")
    ax.set_title("round timeline: time split per round")
    handles = ax.get_legend_handles_labels()[0]
    if any(r.server for r in rounds):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="server-only run"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _acceptance(ax, s: SessionReport) -> None:
    counts = s.position_counts()
    ax.set_title("acceptance per draft position")
    if not counts:
        ax.text(0.5, 0.5, "no speculative rounds with k and accepted", ha="center", va="center",
                transform=ax.transAxes)
        return
    positions = list(range(1, len(counts) + 1))
    ax.bar(positions, s.acceptance_per_position(), color=COLOURS["verify"])
    for pos, (drafted, accepted) in zip(positions, counts):
        ax.annotate(f"{accepted}/{drafted}", (pos, accepted / drafted), textcoords="offset points",
                    xytext=(0, 2), ha="center", fontsize=7)
    ax.set_xticks(positions)
    ax.set_ylim(0, 1.12)
    ax.set_xlabel("draft position (1 = first drafted token)")
    ax.set_ylabel("accepted / drafted at this position")


def _rtt_and_k(ax, rounds: tuple[RoundRow, ...]) -> None:
    """Speculative rounds only: a server-only run's k and net.rtt_ms are sums over its streamed tokens."""
    ax.set_title(f"{SpanAttr.NET_RTT_MS} and k per speculative round")
    nan = float("nan")
    x = [r.index for r in rounds]
    rtt = [nan if r.server or r.rtt_ms is None else r.rtt_ms for r in rounds]
    ax.plot(x, rtt, marker="o", markersize=3, color=COLOURS["uplink"])
    ax.set_xlabel(f"round ({SpanAttr.ROUND})")
    ax.set_ylabel(SpanAttr.NET_RTT_MS, color=COLOURS["uplink"])
    twin = ax.twinx()
    twin.step(x, [nan if r.server or r.k is None else r.k for r in rounds], where="mid", color="#333")
    twin.plot(x, [nan if r.server or r.k is None else r.k for r in rounds], "s", markersize=2, color="#333")
    twin.set_ylabel("k (drafted tokens)")
    twin.set_ylim(bottom=0)
    for i, r in enumerate(r for r in rounds if r.server):
        ax.axvspan(r.index - 0.5, r.index + 0.5, color="#e4e4e4", label=None if i else "server-only run")
    if any(r.server for r in rounds):
        ax.legend(fontsize=7, loc="best")
    for axis in (ax.xaxis, twin.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    if all(v != v for v in rtt):  # all NaN
        ax.text(0.5, 0.5, "no net.rtt_ms on speculative rounds", ha="center", va="center", transform=ax.transAxes)


def figure_png(s: SessionReport) -> str:
    """The session's three plots as one base64 PNG."""
    fig = Figure(figsize=(11, 6.6), dpi=96, layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1.25, 1])
    if s.rounds:
        _timeline(fig.add_subplot(grid[0, :]), s.rounds)
        _rtt_and_k(fig.add_subplot(grid[1, 1]), s.rounds)
    _acceptance(fig.add_subplot(grid[1, 0]), s)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def session_section(i: int, s: SessionReport) -> str:
    facts = ", ".join(f"{k.removeprefix('edgespec.')}={v}" for k, v in s.attributes.items()) or "no session span"
    measured = sum(r.measured_network for r in s.rounds)
    rounds = "".join(_row(_round_cells(r), 2) for r in s.rounds)
    return (f'<section id="session-{i}"><h2>session {html.escape(s.session)}</h2>'
            f'<p class="note">{html.escape(facts)}</p>'
            f'<p class="note">{measured} of {len(s.rounds)} rounds have a measured uplink/downlink (events + '
            f'verify span); the rest show net.rtt_ms as one "network" part.</p>'
            f'<img alt="round timeline, acceptance per position, RTT and k of session {html.escape(s.session)}" '
            f'src="data:image/png;base64,{figure_png(s)}">'
            f'<details><summary>rounds ({len(s.rounds)})</summary><table class="rounds">'
            f'{_head(ROUND_COLUMNS, 2)}{rounds}</table></details></section>')


def render(sessions: list[SessionReport], *, source: str, span_count: int) -> str:
    """The whole page."""
    made = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "".join(session_section(i, s) for i, s in enumerate(sessions)) or "<p>No sessions in these spans.</p>"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>edgespec trace report</title>'
            f"<style>{CSS}</style></head><body><h1>edgespec trace report</h1>"
            f'<p class="note">{span_count} spans from <code>{html.escape(source)}</code>, {made}. '
            "τ = mean tokens committed per speculative round (bonus included); server-only runs are not rounds. "
            "Time split: draft compute, uplink (verify_sent → verify start), queue, verify compute, downlink "
            "(verify end → verdict_received).</p>"
            f"<h2>sessions</h2>{summary_table(sessions)}{body}</body></html>\n")
