"""The `edgespec` console script: the command table, lazy loading and one-line errors. The serving
commands' flags and configs are in `service_cli.py`, `generate`'s in `generate_cli.py`.
`target`, `draft`, `orchestrator` serve; `generate` talks to an SDK endpoint; `demo` runs the
main job end to end; `bench` benchmarks against Hugging Face peers; `netproxy` emulates a slow
link; `vocabtrim` builds / benchmarks a trimmed draft vocabulary; `calibrate` fits the
`semantic` rule's logistic head; `trace-sink`, `trace-report` and `watch` are the offline
observability tools. Errors: one line, exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable

from edgespec.generate_cli import add_demo_flags, add_generate_command_flags, run_generate_command
from edgespec.net.cli import add_netproxy_flags, run_netproxy
from edgespec.service_cli import (add_draft_flags, add_orchestrator_flags, add_target_flags, run_draft,
                                  run_orchestrator, run_target)
from edgespec.sim.cli import add_sim_flags, run_sim_command


def _lazy(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """A command whose implementation is imported only when it runs (the CLI starts light)."""
    def run(a: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), function)(a)
    return run


def _lazy_flags(module: str, function: str) -> Callable[[argparse.ArgumentParser], None]:
    """Flags whose module is imported only when its command is the one parsed."""
    def add(p: argparse.ArgumentParser) -> None:
        getattr(importlib.import_module(module), function)(p)
    return add


# `edgespec bench MODE`: module, its run function, its flags function, help
BENCH_MODES: dict[str, tuple[str, str, str, str]] = {
    "capacity": ("edgespec.bench.capacity", "run_capacity", "add_capacity_flags",
                 "N simulated devices against one target (--sessions, --modes)"),
    "tls": ("edgespec.bench.tls", "run_tls", "add_tls_flags",
            "the bench stack plaintext vs TLS + token auth on both hops, interleaved (--tls-passes)"),
    "fuzz": ("edgespec.bench.fuzz", "run_fuzz", "add_fuzz_flags",
             ">= 10,000 malformed / extreme / out-of-order messages at every RPC (tiny preset; --cases)"),
    "soak": ("edgespec.bench.soak", "run_soak", "add_soak_flags",
             "mixed load for --minutes over the largest --sessions value: errors, greedy parity, RSS/threads/fds"),
}


def _bench_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("mode", nargs="?", choices=tuple(BENCH_MODES),
                   help="; ".join(f"`{name}`: {mode[3]}" for name, mode in BENCH_MODES.items())
                   + "; none: edgespec against HF target-only and assisted generation")
    _lazy_flags("edgespec.bench.run", "add_bench_flags")(p)
    for module, _, add_flags, _ in BENCH_MODES.values():
        _lazy_flags(module, add_flags)(p)


def _run_bench(a: argparse.Namespace) -> int:
    module, run, _, _ = BENCH_MODES.get(a.mode, ("edgespec.bench.run", "run_bench", "", ""))
    return _lazy(module, run)(a)


# name: (run, add its flags, help)
COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], Callable[[argparse.ArgumentParser], None], str]] = {
    "target": (run_target, add_target_flags, "serve the target verifier (edge server / GPU side)"),
    "draft": (run_draft, add_draft_flags, "serve the draft model (+ the orchestrator) on the device"),
    "orchestrator": (run_orchestrator, add_orchestrator_flags, "serve the orchestrator in its own process"),
    "generate": (run_generate_command, add_generate_command_flags, "generate through an orchestrator (SDK endpoint)"),
    "demo": (_lazy("edgespec.demo", "run_demo"), add_demo_flags,
             "start target + draft on loopback, stream a generation, print stats"),
    "bench": (_run_bench, _bench_parser,
              "benchmark edgespec against HF target-only and assisted generation; `bench capacity`: "
              "devices one target serves"),
    "netproxy": (run_netproxy, add_netproxy_flags, "TCP delay proxy emulating a slow link (rtt, jitter, rate)"),
    "vocabtrim": (_lazy("edgespec.vocabtrim_cli", "run_vocabtrim"),
                  _lazy_flags("edgespec.vocabtrim_cli", "add_vocabtrim_flags"),
                  "build a trimmed draft vocabulary (VocabTrim) or benchmark it"),
    "sim": (run_sim_command, add_sim_flags,
            "device and edge as two network namespaces: shaped link, real servers, sweeps"),
    "calibrate": (_lazy("edgespec.bench.calibrate", "run_calibrate"),
                  _lazy_flags("edgespec.bench.calibrate", "add_calibrate_flags"),
                  "fit the `semantic` rule's logistic head on the bundled prompts"),
    "trace-sink": (_lazy("edgespec.telemetry.trace_sink", "run_trace_sink"),
                   _lazy_flags("edgespec.telemetry.trace_sink", "add_trace_sink_flags"),
                   "OTLP/gRPC receiver appending the spans it gets to a JSONL file"),
    "trace-report": (_lazy("edgespec.telemetry.trace_report", "run_trace_report"),
                     _lazy_flags("edgespec.telemetry.trace_report", "add_trace_report_flags"),
                     "spans JSONL -> Chrome-trace JSON (Perfetto) + an HTML report"),
    "watch": (_lazy("edgespec.telemetry.watch", "run_watch"), _lazy_flags("edgespec.telemetry.watch", "add_watch_flags"),
              "live terminal view of an orchestrator's round feed (--feed-publish)"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI; with `command`, only that subcommand gets its flags (and imports what they
    need), so `edgespec --help` and `edgespec generate` never load torch."""
    parser = argparse.ArgumentParser(prog="edgespec", description=__doc__.split("\n")[0])
    parser.add_argument("--log-level", default="WARNING")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (run, add_flags, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_)
        p.set_defaults(func=run)
        if command is None or command == name:
            add_flags(p)
    return parser


def _command_of(argv: list[str]) -> str:
    """The subcommand named in `argv` ("" when none: only the top-level help is needed)."""
    return next((arg for arg in argv if arg in COMMANDS), "")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_command_of(argv)).parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI prints one line, never a traceback
        logging.getLogger("edgespec").debug("command failed", exc_info=True)
        print(f"edgespec {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
