"""`edgespec sim sweep`: RTT x rate x loss x draft-length policy x acceptance rule over the lab.

Each (rate, loss) cell gets one pair of namespaces and one `edgespec target`; per RTT the link is
re-shaped, measured, and a fresh `edgespec draft` runs every prompt through every policy
(interleaved per prompt, so machine noise hits all alike). The first cell's first RTT also runs the
`--k-scan` ks (tau vs k). Baselines run on the same prompts in this process, with no network:
HF target-only (the greedy reference), draft-only on the device, HF assisted generation; and
server-only generation over the link is one of the policies. Writes JSON + Markdown + PNGs.
Not a test: timings depend on the machine; the report says what ran where.
"""

from __future__ import annotations

import os
import pathlib
import platform
import tempfile
import time
from dataclasses import asdict, dataclass

from tqdm import tqdm

from edgespec.bench.sweep import SweepPolicy, SweepRun, sweep_policies
from edgespec.sim.config import LinkShape, SweepConfig
from edgespec.sim.netns import check_prerequisites, lab_up
from edgespec.sim.procs import Supervisor, interrupt_on_signals
from edgespec.sim.run import warmup_job
from edgespec.sim.shaping import apply, choose_mechanism
from edgespec.sim.stack import launch_draft, launch_target, measure_link, run_workload

SERVER_LABEL = "server-only"


@dataclass(frozen=True)
class SimRun(SweepRun):
    """One request of the sweep: a policy-sweep run (what `bench.sweep_report.summarize` reads)
    plus the link cell it ran in and its acceptance rule."""

    rate_mbit: float = 0.0
    loss_pct: float = 0.0
    acceptance: str = "exact"


@dataclass(frozen=True)
class Baseline:
    """One local (no network) baseline generation."""

    system: str
    prompt_id: str
    tokens: int
    seconds: float
    parity: bool


@dataclass(frozen=True)
class Plan:
    """What each draft runs: every prompt through `policies`; the very first draft of the sweep
    (first cell, first RTT) also runs `scan` (the extra fixed ks of tau vs k)."""

    prompts: list
    ids: list[list[int]]
    policies: list[SweepPolicy]
    scan: list[SweepPolicy]

    def policies_at(self, cell: int, rtt_index: int) -> list[SweepPolicy]:
        return self.policies + self.scan if cell == 0 and rtt_index == 0 else self.policies

    def total_jobs(self, cells: int, rtts: int) -> int:
        return len(self.prompts) * (cells * rtts * len(self.policies) + len(self.scan))


def grid_policies(cfg: SweepConfig, ks: tuple[int, ...] | None = None) -> list[SweepPolicy]:
    """The policies named in `cfg.policies` (`fixed` once per k, `server` = server-only), times
    the acceptance rules; rejection rows sample at `cfg.rejection_temperature`."""
    ks = cfg.ks if ks is None else ks
    known = sweep_policies(list(ks), cfg.k_max)
    chosen = []
    for name in cfg.policies:
        match = [p for p in known if p.label == name or (name == "server" and p.label == SERVER_LABEL)
                 or (name == "fixed" and p.label.startswith("fixed k=") and "+" not in p.label)]
        if not match:
            raise ValueError(f"unknown policy {name!r}; expected fixed, heuristic, adaedl, svip, auto, "
                             "auto+proactive or server")
        chosen += match
    rules = {"exact": ("", {"acceptance": "exact"}),
             "rejection": (f" · rejection T={cfg.rejection_temperature:g}",
                           {"acceptance": "rejection", "temperature": cfg.rejection_temperature})}
    return [SweepPolicy(p.label + rules[rule][0], {**p.fields, **rules[rule][1]})
            for rule in cfg.acceptance for p in chosen]


def make_jobs(prompts: list, ids: list[list[int]], policies: list[SweepPolicy], cfg: SweepConfig) -> list[dict]:
    """Every prompt through every policy, interleaved per prompt; token ids sent verbatim."""
    base = {"max_new_tokens": cfg.workload.max_new_tokens, "seed": cfg.workload.seed}
    return [{"id": p.id, "label": policy.label, "prompt_token_ids": prompt_ids,
             "options": {**base, **policy.fields}} for p, prompt_ids in zip(prompts, ids) for policy in policies]


def local_baselines(cfg: SweepConfig, prompts, ids, bar) -> tuple[list[Baseline], dict[str, list[int]]]:
    """HF target-only (the reference), draft-only and HF assisted k=ks[0], in this process."""
    import torch

    from edgespec.bench.baselines import assisted, target_only
    from edgespec.models.presets import load_model
    torch.set_num_threads(cfg.runtime.threads)
    target, draft = load_model(cfg.workload.model, "target"), load_model(cfg.workload.model, "draft")
    n, eos, k = cfg.workload.max_new_tokens, target.eos_token_ids, cfg.ks[0]
    systems = {"target-only (HF, local)": lambda i: target_only(target.model, i, n, eos),
               "draft-only on the device (HF)": lambda i: target_only(draft.model, i, n, draft.eos_token_ids),
               f"HF assisted k={k} (local)": lambda i: assisted(target.model, draft.model, i, n, eos, k)}
    runs, reference = [], {}
    for prompt, prompt_ids in zip(prompts, ids):
        for system, generate in systems.items():
            result = generate(prompt_ids)
            reference.setdefault(prompt.id, result.token_ids)
            runs.append(Baseline(system, prompt.id, len(result.token_ids), result.seconds,
                                 result.token_ids == reference[prompt.id]))
            bar.update()
    return runs, reference


def _to_runs(records: list[dict], shape: LinkShape, policies: list[SweepPolicy], reference) -> list[SimRun]:
    """Job records -> SimRuns; greedy parity against `reference` (HF target-only), or against
    this draft's own server-only run of the prompt when there are no local baselines."""
    rules = {p.label: p.fields["acceptance"] for p in policies}
    server = {r["job"]: r["result"]["token_ids"] for r in records if r["label"] == SERVER_LABEL}
    runs = []
    for r in records:
        ids, rule = r["result"]["token_ids"], rules[r["label"]]
        parity = rule == "exact" and ids == reference.get(r["job"], server.get(r["job"]))
        runs.append(SimRun(shape.rtt_ms, r["label"], r["job"], len(ids), r["seconds"], r["client_ttft_ms"], parity,
                           r["result"]["stats"], rate_mbit=shape.rate_mbit, loss_pct=shape.loss_pct, acceptance=rule))
    return runs


def _one_rtt(procs, lab, cfg: SweepConfig, shape: LinkShape, mechanism: str, jobs: list[dict], bar) -> tuple:
    """Shape, measure, start a draft, run `jobs`, stop the draft: (records, link measurement)."""
    shaping = apply(lab, shape, mechanism)
    measured = measure_link(procs, lab, shape, shaping)
    bar.write(f"[rate {shape.rate_mbit:g} Mbit/s, loss {shape.loss_pct:g}%, RTT {shape.rtt_ms:g} ms] "
              f"measured TCP RTT p50 {measured['tcp_rtt_ms']['p50']:.1f} ms, rate "
              f"{measured['rate_up_mbit']:.1f} Mbit/s, loss {measured['loss_per_direction_pct']:.2f}%/dir")
    draft = launch_draft(procs, lab, cfg.workload.model, cfg.runtime.threads, shaping)
    address = procs.wait_ready(draft, cfg.runtime.ready_timeout_s)
    try:
        records = run_workload(procs, lab, address, [warmup_job(jobs[0]["options"]), *jobs],
                               cfg.runtime.deadline_s, lambda record: bar.update(record["label"] != "warm-up"))
    finally:
        procs.stop(draft)
    link = {"rate_mbit": shape.rate_mbit, "loss_pct": shape.loss_pct, "rtt_ms": shape.rtt_ms,
            "mechanism": shaping.mechanism, "shaping": shaping.description, **measured}
    return records[1:], link


def run_cell(cfg: SweepConfig, mechanism: str, cell: int, plan: Plan, reference, bar) -> tuple[list, list]:
    """One (rate, loss) cell: a lab and a target; every RTT of the grid, a fresh draft each."""
    rate, loss = cfg.cells()[cell]
    runs, links = [], []
    with tempfile.TemporaryDirectory(prefix="edgespec-sweep-") as tmp, lab_up() as lab, \
            Supervisor(pathlib.Path(tmp)) as procs:
        target = launch_target(procs, lab, cfg.workload.model, cfg.runtime.threads)
        procs.wait_ready(target, cfg.runtime.ready_timeout_s)
        for i, rtt in enumerate(cfg.rtts):
            shape = LinkShape(rtt_ms=rtt, jitter_ms=cfg.jitter_ms, loss_pct=loss, rate_mbit=rate)
            policies = plan.policies_at(cell, i)
            jobs = make_jobs(plan.prompts, plan.ids, policies, cfg)
            records, link = _one_rtt(procs, lab, cfg, shape, mechanism, jobs, bar)
            runs += _to_runs(records, shape, policies, reference)
            links.append(link)
    return runs, links


def make_plan(cfg: SweepConfig) -> Plan:
    from edgespec.bench.prompts import load_prompts
    from edgespec.models.presets import load_tokenizer
    from edgespec.models.prompting import encode_prompt
    prompts = load_prompts(cfg.workload.prompts)[: cfg.workload.num_prompts]
    tokenizer = load_tokenizer(cfg.workload.model)
    policies = grid_policies(cfg)
    extra = tuple(k for k in cfg.k_scan if k not in cfg.ks)
    scan = [p for p in grid_policies(cfg, extra) if p.label.startswith("fixed k=")] if extra else []
    return Plan(prompts, [encode_prompt(tokenizer, p.prompt) for p in prompts], policies, scan)


def run_sweep(cfg: SweepConfig) -> dict:
    """The whole sweep; writes sim_sweep.json / .md / PNGs into `cfg.runtime.out`."""
    from edgespec.sim.sweep_report import write_report
    check_prerequisites()
    plan = make_plan(cfg)
    total = plan.total_jobs(len(cfg.cells()), len(cfg.rtts)) + (3 * len(plan.prompts) if cfg.baselines else 0)
    with interrupt_on_signals(), tqdm(total=total, desc="sim sweep", unit="run") as bar:
        baselines, reference = local_baselines(cfg, plan.prompts, plan.ids, bar) if cfg.baselines else ([], {})
        mechanism = choose_mechanism(cfg.runtime.mechanism)
        runs, links = [], []
        for cell in range(len(cfg.cells())):
            cell_runs, cell_links = run_cell(cfg, mechanism, cell, plan, reference, bar)
            runs, links = runs + cell_runs, links + cell_links
    meta = {"model": cfg.workload.model, "prompts": [p.id for p in plan.prompts], "mechanism": mechanism,
            "max_new_tokens": cfg.workload.max_new_tokens, "torch_threads": cfg.runtime.threads,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d %H:%M"),
            "reference": "HF target-only (local)" if cfg.baselines else "server-only at the same link"}
    payload = {"meta": meta, "config": asdict(cfg), "labels": [p.label for p in plan.policies + plan.scan],
               "links": links, "baselines": [asdict(b) for b in baselines], "runs": [asdict(r) for r in runs]}
    write_report(payload, pathlib.Path(cfg.runtime.out))
    return payload
