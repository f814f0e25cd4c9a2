"""Command-line wiring of `edgespec sim` (one run), `edgespec sim sweep` (a grid) and `edgespec sim
cleanup` (remove labs whose owner was killed): flags -> the frozen configs of `sim.config`, and a
dispatch registry. Parsing only; it imports nothing heavy until a command runs.
"""

from __future__ import annotations

import argparse
import dataclasses

from edgespec.sim.config import QUICK_GRID, LinkShape, Runtime, SimConfig, SweepConfig, Workload

MECHANISM_CHOICES = ("auto", "netem", "userspace")


def _workload_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2", help="preset of both roles (smollm2, tiny, ...)")
    p.add_argument("--prompts", default=None, help="prompt file (bench JSONL); default: the bundled set")
    p.add_argument("--num-prompts", type=int, default=3, help="first N prompts of the file")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)


def _runtime_flags(p: argparse.ArgumentParser, out: str | None) -> None:
    p.add_argument("--threads", type=int, default=1, help="torch threads of the target and of the draft")
    p.add_argument("--mechanism", default="auto", choices=MECHANISM_CHOICES,
                   help="link shaping: netem if the kernel has it (auto), or tbf + nftables + delay proxy")
    p.add_argument("--ready-timeout", type=float, default=600.0, help="seconds a server may take to serve")
    p.add_argument("--deadline", type=float, default=1800.0, help="seconds the workload of one draft may take")
    p.add_argument("--out", default=out, help="folder for the results" + ("" if out else " (default: print only)"))


def add_sim_flags(p: argparse.ArgumentParser) -> None:
    """`edgespec sim` flags, plus its `sweep` and `cleanup` subcommands."""
    p.add_argument("--rtt", type=float, default=50.0, help="round-trip time device <-> edge, ms")
    p.add_argument("--jitter", type=float, default=0.0, help="extra delay per direction, ms (order kept)")
    p.add_argument("--loss", type=float, default=0.0, help="packet loss per direction, %%")
    p.add_argument("--rate", type=float, default=0.0, help="rate per direction, Mbit/s (0: unlimited)")
    p.add_argument("--policy", default=None, help="draft-length policy: fixed, heuristic, adaedl, svip, auto, "
                   "server (default: auto)")
    p.add_argument("--k", type=int, default=None, help="draft length (first round's if adaptive)")
    p.add_argument("--k-max", type=int, default=None, help="cap of adaptive policies")
    p.add_argument("--proactive", action="store_true", help="draft ahead while each verdict is in flight")
    p.add_argument("--acceptance", default=None, help="exact | rejection (default by temperature)")
    p.add_argument("--temperature", type=float, default=0.0)
    _workload_flags(p)
    _runtime_flags(p, None)
    sub = p.add_subparsers(dest="sim_command", metavar="{sweep,cleanup}")
    _add_sweep_flags(sub.add_parser("sweep", help="grid of RTT x rate x loss x policy x acceptance rule, "
                                    "with baselines, JSON + Markdown + PNG"))
    sub.add_parser("cleanup", help="remove namespaces left behind by runs that were killed (SIGKILL)")


def _add_sweep_flags(s: argparse.ArgumentParser) -> None:
    s.add_argument("--rtt", type=float, nargs="+", default=[0.0, 25.0, 100.0], help="round-trip times, ms")
    s.add_argument("--rate", type=float, nargs="+", default=[0.0, 10.0], help="rates, Mbit/s (0: unlimited)")
    s.add_argument("--loss", type=float, nargs="+", default=[0.0, 1.0], help="loss per direction, %%")
    s.add_argument("--jitter", type=float, default=0.0, help="jitter per direction in every cell, ms")
    s.add_argument("--policies", nargs="+", default=["fixed", "auto", "server"],
                   help="fixed (one per --k), heuristic, adaedl, svip, auto, auto+proactive, server")
    s.add_argument("--k", type=int, nargs="+", default=[3], help="draft lengths of `fixed` (first: HF assisted)")
    s.add_argument("--k-max", type=int, default=8)
    s.add_argument("--k-scan", type=int, nargs="*", default=[1, 2, 4, 6],
                   help="extra fixed ks run in the first cell only (tau vs k)")
    s.add_argument("--acceptance", nargs="+", default=["exact"], choices=["exact", "rejection"])
    s.add_argument("--rejection-temperature", type=float, default=0.7)
    s.add_argument("--no-baselines", action="store_true", help="skip the local HF / draft-only baselines")
    s.add_argument("--quick", action="store_true", help="a smoke grid: RTT 0/50, one prompt, 16 tokens")
    _workload_flags(s)
    _runtime_flags(s, "bench-results/sim")


def _workload(a: argparse.Namespace, temperature: float = 0.0) -> Workload:
    return Workload(model=a.model, prompts=a.prompts, num_prompts=a.num_prompts, max_new_tokens=a.max_new_tokens,
                    temperature=temperature, seed=a.seed)


def _runtime(a: argparse.Namespace) -> Runtime:
    return Runtime(threads=a.threads, mechanism=a.mechanism, ready_timeout_s=a.ready_timeout,
                   deadline_s=a.deadline, out=a.out)


def sim_config(a: argparse.Namespace) -> SimConfig:
    return SimConfig(link=LinkShape(rtt_ms=a.rtt, jitter_ms=a.jitter, loss_pct=a.loss, rate_mbit=a.rate),
                     workload=_workload(a, a.temperature), runtime=_runtime(a), policy=a.policy, k=a.k,
                     k_max=a.k_max, proactive=a.proactive, acceptance=a.acceptance)


def sweep_config(a: argparse.Namespace) -> SweepConfig:
    cfg = SweepConfig(rtts=tuple(a.rtt), rates=tuple(a.rate), losses=tuple(a.loss), jitter_ms=a.jitter,
                      policies=tuple(a.policies), ks=tuple(a.k), k_max=a.k_max, k_scan=tuple(a.k_scan),
                      acceptance=tuple(a.acceptance), rejection_temperature=a.rejection_temperature,
                      baselines=not a.no_baselines, workload=_workload(a), runtime=_runtime(a))
    if not a.quick:
        return cfg
    quick = {k: v for k, v in QUICK_GRID.items() if k not in ("num_prompts", "max_new_tokens")}
    workload = dataclasses.replace(cfg.workload, num_prompts=QUICK_GRID["num_prompts"],
                                   max_new_tokens=QUICK_GRID["max_new_tokens"])
    return dataclasses.replace(cfg, **quick, workload=workload)


def _run_one(a: argparse.Namespace) -> int:
    from edgespec.sim.run import run_sim
    run_sim(sim_config(a))
    return 0


def _run_sweep(a: argparse.Namespace) -> int:
    from edgespec.sim.sweep import run_sweep
    run_sweep(sweep_config(a))
    return 0


def _run_cleanup(a: argparse.Namespace) -> int:
    from edgespec.sim.netns import check_prerequisites, destroy, stale_labs
    check_prerequisites()
    for lab in stale_labs():
        left = destroy(lab)
        print(f"removed lab {lab.suffix}" + (f" (left: {left})" if left else ""))
    return 0


SUBCOMMANDS = {None: _run_one, "sweep": _run_sweep, "cleanup": _run_cleanup}


def run_sim_command(a: argparse.Namespace) -> int:
    """`edgespec sim [sweep|cleanup]`."""
    return SUBCOMMANDS[a.sim_command](a)
