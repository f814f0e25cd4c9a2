"""`edgespec bench fuzz`: >= 10,000 hypothesis-drawn malformed, extreme and out-of-order messages
(`edgespec.suites.fuzz_cases`) at every RPC of real tiny-preset target, draft and standalone
orchestrator processes (`suites.fuzz_run`), 8 at a time, beside victim sessions; then the
aftermath (processes alive, victims unchanged, no live session left, a correct generation, no
error in the server logs, RSS). Writes fuzz.json / fuzz.md: the status table per RPC and per
family, every problem. Exit status 1 when anything went wrong. The CI-sized run is
tests/services/test_fuzz.py.
"""

from __future__ import annotations

import argparse
import collections
import platform
import time
from contextlib import contextmanager

SERVER_FLAGS = ["--first-message-timeout", "2", "--max-sessions", "64"]


@contextmanager
def fuzz_servers():
    """Target, draft (+ embedded orchestrator) and a standalone orchestrator on the tiny preset,
    with a 2 s first-message deadline (calls that never send end quickly) and room for the
    fuzz's concurrent sessions."""
    from edgespec.bench.stack import server_processes
    with server_processes("tiny", SERVER_FLAGS, SERVER_FLAGS, [*SERVER_FLAGS, "--tokenizer", "tiny"],
                          logs=True) as servers:
        yield servers


# fuzz_cases / fuzz_run import hypothesis (a dev dependency): only when this mode runs, never
# when `edgespec bench` merely registers its flags


def add_fuzz_flags(p: argparse.ArgumentParser) -> None:
    """Flags of `edgespec bench fuzz` (it always runs the tiny preset; --out is shared)."""
    p.add_argument("--cases", type=int, default=10_000, help="fuzz: cases to send (>= 1)")
    p.add_argument("--fuzz-seed", type=int, default=None, help="fuzz: hypothesis seed (default: random)")


def status_table(outcomes: list, key: str) -> tuple[list[str], dict[str, collections.Counter]]:
    """Rows (`key`: "rpc" or "family") x status counts, and the statuses seen, bad ones last."""
    from edgespec.suites.fuzz_run import BAD_CODES
    rows: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for o in outcomes:
        rows[getattr(o, key)][o.status] += 1
    seen = {o.status for o in outcomes}
    statuses = sorted(seen - set(BAD_CODES) - {"HANG"}, key=lambda s: (s != "OK", s)) + [*BAD_CODES, "HANG"]
    return statuses, dict(rows)


def _table(title: str, statuses: list[str], rows: dict[str, collections.Counter], order) -> list[str]:
    lines = [f"| {title} | " + " | ".join(statuses) + " | total |", "|---|" + "---|" * (len(statuses) + 1)]
    for name in order:
        if name in rows:
            counts = rows[name]
            lines.append(f"| {name} | " + " | ".join(str(counts.get(s, 0)) for s in statuses)
                         + f" | {sum(counts.values())} |")
    return lines


def to_markdown(meta: dict, outcomes: list, aftermath: dict, failures: list[str]) -> str:
    from edgespec.suites.fuzz_cases import BY_NAME, FAMILIES
    from edgespec.suites.fuzz_run import DEADLINE_S
    problems = [o for o in outcomes if o.problem]
    statuses, by_rpc = status_table(outcomes, "rpc")
    _, by_family = status_table(outcomes, "family")
    v = aftermath["victims"]
    lines = [f"### edgespec bench fuzz — {meta['cases']} cases, tiny preset ({meta['date']})", "",
             f"{meta['cases']} hypothesis-drawn cases ({meta['seconds']:.0f} s, {meta['cases_per_s']:.0f} cases/s, "
             f"8 concurrent; hypothesis {meta['hypothesis']}, seed {meta['seed']}) against a target, a draft "
             "(+ embedded orchestrator) and a standalone orchestrator, each its own process on loopback. "
             f"A problem: UNKNOWN / INTERNAL / UNAVAILABLE / DATA_LOSS, a traceback in the details, or no status "
             f"within {DEADLINE_S:g} s (HANG). OK counts calls the server accepted (cut short after 16 answers: "
             f"{sum(o.cut_short for o in outcomes)}).", "",
             *_table("RPC", statuses, by_rpc, BY_NAME), "",
             *_table("family", statuses, by_family, FAMILIES), "",
             f"**Problems: {len(problems)}.** **Aftermath: {'OK' if not failures else '; '.join(failures)}.**", "",
             f"- server processes alive: {'all 3' if not aftermath['dead'] else aftermath['dead']}; "
             f"errors in their logs: {sum(map(len, aftermath['log_errors'].values()))}",
             f"- victims: Verifier session {v['target_rounds']} rounds, identical to an undisturbed replay: "
             f"{v['target_same']}; Drafter session {v['drafter_rounds']} rounds, identical: {v['drafter_same']}; "
             f"{v['generations']['same']}/{v['generations']['runs']} SDK generations during the fuzz equal to the "
             f"one before it; after it equal: {v['after_same']}; equal to target-only greedy: "
             f"{v['baseline_is_target_greedy']}",
             f"- live sessions afterwards: {aftermath['live_sessions']}",
             "- RSS MiB before → after (threads, fds): " + "; ".join(
                 f"{role} {aftermath['before'][role]['rss_mb']:.0f} → {after['rss_mb']:.0f} "
                 f"({aftermath['before'][role]['threads']} → {after['threads']}, "
                 f"{aftermath['before'][role]['fds']} → {after['fds']})"
                 for role, after in aftermath["after"].items())]
    for o in problems[:20]:
        lines.append(f"- problem: {o.rpc} / {o.family}: {o.problem}")
    return "\n".join(lines) + "\n"


def run_fuzz(a: argparse.Namespace) -> int:
    import hypothesis
    from tqdm import tqdm

    from edgespec.suites.fuzz_run import FuzzRun, fuzz
    from edgespec.bench.outputs import write_outputs
    with fuzz_servers() as servers:
        run = FuzzRun(servers)
        start = time.monotonic()
        try:
            bar = tqdm(total=a.cases, desc="fuzz", unit="case")
            outcomes = fuzz(run, a.cases, seed=a.fuzz_seed, stop_on_problem=False,
                            progress=lambda got: bar.update(len(got)))
            bar.close()
            seconds = time.monotonic() - start
            aftermath = run.finish()
            failures = run.failures(aftermath)
        finally:
            run.close()
    meta = {"cases": len(outcomes), "seconds": seconds, "cases_per_s": len(outcomes) / seconds,
            "seed": a.fuzz_seed if a.fuzz_seed is not None else "random", "hypothesis": hypothesis.__version__,
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
            "date": time.strftime("%Y-%m-%d %H:%M")}
    markdown = to_markdown(meta, outcomes, aftermath, failures)
    problems = [o.to_dict() | {"problem": o.problem} for o in outcomes if o.problem]
    payload = {"meta": meta, "by_rpc": status_table(outcomes, "rpc")[1],
               "by_family": status_table(outcomes, "family")[1],
               "problems": problems, "aftermath": aftermath, "failures": failures}
    wrote = write_outputs(a.out, "fuzz", payload, markdown)
    print(markdown)
    print(wrote)
    return 1 if problems or failures else 0
