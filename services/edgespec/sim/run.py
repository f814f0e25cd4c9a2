"""`edgespec sim`: one device/edge run. Build the lab, shape and measure the link, start the target
(edge) and the draft (device), run the prompts through the SDK on the device, print per-prompt
and overall numbers, tear everything down whatever happens. Returns the report as a dict.
Not a sweep (`sweep`), and not a place for mechanism details (`shaping`, `netns`).
"""

from __future__ import annotations

import pathlib
import tempfile
from collections.abc import Callable
from dataclasses import asdict

from edgespec.sim.config import SimConfig, Workload
from edgespec.sim.netns import check_prerequisites, lab_up
from edgespec.sim.procs import Supervisor, interrupt_on_signals
from edgespec.sim.shaping import apply, choose_mechanism
from edgespec.sim.stack import format_link, launch_draft, launch_target, measure_link, run_workload, write_json

WARMUP_TOKENS = 4


def make_jobs(workload: Workload, options: dict, label: str = "") -> list[dict]:
    """The workload's prompts (first N of the file) as SDK jobs with `options`."""
    from edgespec.bench.prompts import load_prompts
    prompts = load_prompts(workload.prompts)[: workload.num_prompts]
    return [{"id": p.id, "label": label, "prompt": p.prompt, "options": options} for p in prompts]


def warmup_job(options: dict) -> dict:
    return {"id": "warm-up", "label": "warm-up", "prompt": "Hello",
            "options": {**options, "max_new_tokens": WARMUP_TOKENS}}


def record_row(record: dict) -> dict:
    """The headline numbers of one job record."""
    stats, tokens = record["result"]["stats"], len(record["result"]["token_ids"])
    rounds = max(stats["rounds"], 1)
    return {"id": record["job"], "tokens": tokens, "seconds": record["seconds"],
            "tokens_per_second": tokens / record["seconds"] if record["seconds"] else 0.0,
            "ttft_ms": record["client_ttft_ms"], "tau": stats["mean_accepted_length"], "rounds": stats["rounds"],
            "round_trip_ms_p50": stats["round_trip_ms"]["p50"],
            "bytes_per_round": (stats["bytes_up"] + stats["bytes_down"]) / rounds,
            "rounds_per_100_tokens": 100 * stats["rounds"] / max(tokens, 1)}


def format_rows(rows: list[dict]) -> str:
    header = "| prompt | tokens | tokens/s | TTFT ms | τ | rounds | round trip p50 ms | bytes/round |"
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['id']} | {r['tokens']} | {r['tokens_per_second']:.2f} | {r['ttft_ms']:.0f} | "
                     f"{r['tau']:.2f} | {r['rounds']} | {r['round_trip_ms_p50']:.1f} | {r['bytes_per_round']:.0f} |")
    tokens, seconds = sum(r["tokens"] for r in rows), sum(r["seconds"] for r in rows)
    lines.append(f"| **all** | {tokens} | {tokens / seconds if seconds else 0:.2f} | "
                 f"{sum(r['ttft_ms'] for r in rows) / max(len(rows), 1):.0f} | | "
                 f"{sum(r['rounds'] for r in rows)} | | |")
    return "\n".join(lines)


def run_sim(cfg: SimConfig, echo: Callable[[str], None] = print) -> dict:
    """The whole run; raises SimUnavailable / LabError / ServiceDied / TimeoutError on failure."""
    check_prerequisites()
    jobs = make_jobs(cfg.workload, cfg.request_options(), cfg.policy or "default")
    rt = cfg.runtime
    mechanism = choose_mechanism(rt.mechanism)
    with interrupt_on_signals(), tempfile.TemporaryDirectory(prefix="edgespec-sim-") as tmp, \
            lab_up() as lab, Supervisor(pathlib.Path(tmp)) as procs:
        echo(f"lab: namespaces {lab.device} (device) <-> {lab.edge} (edge), veth {lab.device_if}/{lab.edge_if}")
        shaping = apply(lab, cfg.link, mechanism)
        echo(f"link asked: {cfg.link.describe()}\nshaping: {shaping.mechanism}: {shaping.description}")
        measured = measure_link(procs, lab, cfg.link, shaping)
        echo(format_link(measured))
        echo(f"starting edgespec target ({cfg.workload.model}) in {lab.edge} and edgespec draft in {lab.device} ...")
        target = launch_target(procs, lab, cfg.workload.model, rt.threads)
        draft = launch_draft(procs, lab, cfg.workload.model, rt.threads, shaping)
        echo(f"target on {procs.wait_ready(target, rt.ready_timeout_s)}, draft + orchestrator on "
             f"{(draft_address := procs.wait_ready(draft, rt.ready_timeout_s))}")
        echo(f"workload: {len(jobs)} prompt(s) x {cfg.workload.max_new_tokens} new tokens, policy "
             f"{cfg.policy or 'auto (draft default)'}")
        records = run_workload(procs, lab, draft_address, [warmup_job(cfg.request_options()), *jobs], rt.deadline_s)[1:]
    rows = [record_row(r) for r in records]
    echo(format_rows(rows))
    report = {"config": asdict(cfg), "lab": lab.suffix, "shaping": asdict(shaping), "link": measured,
              "rows": rows, "runs": records}
    if rt.out:
        write_json(pathlib.Path(rt.out) / "sim.json", report)
        echo(f"wrote {pathlib.Path(rt.out) / 'sim.json'}")
    return report
