"""The `edgespec` console script: subcommands map 1:1 to the services' frozen configs.
`target`, `draft`, `orchestrator` serve; `generate` talks to an SDK endpoint; `demo` runs the
main job end to end; `bench` benchmarks against Hugging Face peers; `netproxy` emulates a slow
link; `vocabtrim` builds / benchmarks a trimmed draft vocabulary; `calibrate` fits the
`semantic` rule's logistic head; `trace-sink`, `trace-report` and `watch` are the offline
observability tools. Errors: one line, exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from edgespec.net.cli import add_emulation_flags, add_netproxy_flags, link_spec_from_args, run_netproxy
from edgespec.security_flags import (add_client_security_flags, add_server_security_flags, client_security,
                                     sdk_connection, server_security)
from edgespec.sim.cli import add_sim_flags, run_sim_command

if TYPE_CHECKING:  # the configs (and torch below them) load only when a command builds one
    from edgespec.draft.config import DraftConfig
    from edgespec.orchestrator.config import OrchestratorConfig
    from edgespec.rpc.server import ServerOptions
    from edgespec.target.config import TargetConfig
    from edgespec.telemetry.options import TelemetryOptions

DEFAULT_TARGET_PORT, DEFAULT_DRAFT_PORT = 50051, 50052


def _server_flags(p: argparse.ArgumentParser, port: int) -> None:
    p.add_argument("--listen", default=f"127.0.0.1:{port}", help="HOST:PORT to serve on (port 0: any)")
    p.add_argument("--max-message-bytes", type=int, default=16 << 20)
    p.add_argument("--no-reflection", action="store_true", help="disable gRPC server reflection")
    p.add_argument("--grace", type=float, default=5.0, help="seconds live sessions get on shutdown")
    p.add_argument("--keepalive-time", type=float, default=20.0, help="keepalive ping interval, s")
    p.add_argument("--keepalive-timeout", type=float, default=5.0, help="keepalive ack timeout, s")
    p.add_argument("--ready-file", help="write the bound HOST:PORT here once serving")
    p.add_argument("--first-message-timeout", type=float, default=10.0,
                   help="seconds a call may take to send its first request message")
    add_server_security_flags(p)


def _telemetry_flags(p: argparse.ArgumentParser, feed: bool) -> None:
    p.add_argument("--metrics-listen", default=None, metavar="[HOST:]PORT",
                   help="serve Prometheus metrics on http://HOST:PORT/metrics (off by default; a bare PORT "
                   "binds 127.0.0.1; no auth, so a non-loopback HOST is logged as a warning)")
    if feed:
        p.add_argument("--feed-publish", default=None, metavar="ADDRESS",
                       help="publish one event per round on this ZMQ PUB address, e.g. tcp://127.0.0.1:5557 "
                       "(off by default; `edgespec watch ADDRESS` shows it)")
        p.add_argument("--feed-hwm", type=int, default=1000, help="feed events queued per subscriber before "
                       "new ones are dropped")


def telemetry_options(a: argparse.Namespace) -> TelemetryOptions:
    """Metrics and the round feed carry no auth: a bare PORT binds loopback, and binding anywhere
    else is said out loud."""
    from edgespec.telemetry.options import TelemetryOptions
    metrics = f"127.0.0.1:{a.metrics_listen}" if (a.metrics_listen or "").isdigit() else a.metrics_listen
    feed = getattr(a, "feed_publish", None)
    options = TelemetryOptions(metrics_listen=metrics, feed_publish=feed, feed_hwm=getattr(a, "feed_hwm", 1000))
    if metrics and not _loopback_host(metrics.rpartition(":")[0]):
        logging.getLogger("edgespec").warning("metrics on %s: reachable beyond this host, without auth", metrics)
    if feed and feed.startswith("tcp://") and not _loopback_host(feed[6:].rpartition(":")[0]):
        logging.getLogger("edgespec").warning("round feed on %s: reachable beyond this host, without auth", feed)
    return options


def _loopback_host(host: str) -> bool:
    return host.strip("[]") in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def _model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2", help="preset (smollm2, gemma3, tiny), HF path/id or .gguf file")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--max-sessions", type=int, default=16)
    p.add_argument("--idle-ttl", type=float, default=300.0, help="seconds before an idle session is freed")
    p.add_argument("--open-ttl", type=float, default=60.0,
                   help="seconds an opened session may wait for its first block before it is freed")
    p.add_argument("--max-sessions-per-caller", type=int, default=None,
                   help="live sessions one caller (token name, else peer IP; loopback is exempt) may hold "
                   "(default: half of --max-sessions)")
    p.add_argument("--max-prompt-tokens", type=int, default=4096)
    p.add_argument("--max-new-tokens", type=int, default=4096)


def _draft_runtime_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runtime", default=None, help="what runs the draft model: llamacpp or torch "
                   "(default: the preset's; llamacpp for smollm2 and gemma3)")
    p.add_argument("--draft-threads", type=int, default=1, help="llama.cpp threads of the draft runtime")


def _target_flags(p: argparse.ArgumentParser) -> None:
    _server_flags(p, DEFAULT_TARGET_PORT)
    _model_flags(p)
    p.add_argument("--semantic-head", default=None, help="calibrated head file for the `semantic` rule")
    p.add_argument("--kv-cache-tokens", type=int, default=16384,
                   help="KV positions preallocated for all sessions; a session reserves prompt + max_new_tokens + 1")
    p.add_argument("--max-batch-tokens", type=int, default=512, help="most tokens in one batched forward")
    p.add_argument("--max-batch-sessions", type=int, default=64,
                   help="most sessions in one batched forward (1: one session per forward, unbatched)")
    p.add_argument("--prefill-chunk", type=int, default=256, help="most prompt tokens of a session per forward")
    p.add_argument("--admission-wait", type=float, default=5.0,
                   help="seconds a new session waits for KV room before RESOURCE_EXHAUSTED")
    p.add_argument("--gather-ms", type=float, default=50.0, help="under load, most ms a step waits for the "
                   "sessions the last step served (capped at 10%% of a step)")


def _orchestrator_defaults():
    """OrchestratorConfig's defaults, the one home of the orchestrator flags' (imported only by the
    serving commands, which load the core anyway)."""
    from edgespec.orchestrator.config import OrchestratorConfig
    return OrchestratorConfig()


def _orchestrator_flags(p: argparse.ArgumentParser) -> None:
    d = _orchestrator_defaults()
    p.add_argument("--target", default=d.target, help="target HOST:PORT")
    p.add_argument("--k", type=int, default=d.default_k, help="default draft length for requests that set none")
    p.add_argument("--k-max", type=int, default=d.default_k_max, help="default cap for adaptive draft-length policies")
    p.add_argument("--draft-length", default=d.default_policy, help="default draft-length policy for requests "
                   "that name none (fixed, heuristic, adaedl, svip, auto, server)")
    p.add_argument("--round-timeout", type=float, default=d.round_timeout_s, help="seconds to wait for a verdict")
    p.add_argument("--session-timeout", type=float, default=d.session_timeout_s)
    add_client_security_flags(p, upstream=True)
    p.add_argument("--max-prompt-chars", type=int, default=d.max_prompt_chars,
                   help="longest text prompt, in characters, checked before tokenizing")


def server_options(a: argparse.Namespace) -> ServerOptions:
    from edgespec.rpc.server import ServerOptions
    return ServerOptions(listen=a.listen, max_message_bytes=a.max_message_bytes, **server_security(a),
                         grace_s=a.grace, keepalive_time_s=a.keepalive_time,
                         keepalive_timeout_s=a.keepalive_timeout, ready_file=a.ready_file,
                         first_message_timeout_s=a.first_message_timeout)


def _model_service(a: argparse.Namespace) -> dict:
    return {"model": a.model, "dtype": a.dtype, "device": a.device, "threads": a.threads,
            "max_sessions": a.max_sessions, "idle_ttl_s": a.idle_ttl, "open_ttl_s": a.open_ttl,
            "max_sessions_per_caller": a.max_sessions_per_caller, "max_prompt_tokens": a.max_prompt_tokens,
            "max_new_tokens": a.max_new_tokens, "server": server_options(a), "telemetry": telemetry_options(a)}


def target_config(a: argparse.Namespace) -> TargetConfig:
    from edgespec.models.engine_config import EngineConfig
    from edgespec.target.config import TargetConfig
    engine = EngineConfig(kv_cache_tokens=a.kv_cache_tokens, max_batch_tokens=a.max_batch_tokens,
                          max_batch_sessions=a.max_batch_sessions, prefill_chunk=a.prefill_chunk,
                          admission_wait_s=a.admission_wait, gather_ms=a.gather_ms)
    return TargetConfig(**_model_service(a), semantic_head=a.semantic_head, engine=engine)


def orchestrator_config(a: argparse.Namespace, tokenizer: str | None = None) -> OrchestratorConfig:
    from edgespec.orchestrator.config import OrchestratorConfig
    return OrchestratorConfig(
        target=a.target, draft=getattr(a, "draft", None), tokenizer=tokenizer or a.tokenizer,
        default_policy=a.draft_length, default_k=a.k, default_k_max=a.k_max, max_sessions=a.max_sessions,
        max_sessions_per_caller=a.max_sessions_per_caller, round_timeout_s=a.round_timeout,
        session_timeout_s=a.session_timeout, max_prompt_chars=a.max_prompt_chars,
        max_prompt_tokens=a.max_prompt_tokens, server=server_options(a), telemetry=telemetry_options(a),
        upstream=client_security(a))


def draft_config(a: argparse.Namespace) -> DraftConfig:
    from edgespec.draft.config import DraftConfig
    return DraftConfig(**_model_service(a), embed_orchestrator=not a.no_orchestrator,
                       orchestrator=orchestrator_config(a, tokenizer=a.model),
                       vocab_trim=a.vocab_trim, runtime=a.runtime, draft_threads=a.draft_threads)


def _run_target(a: argparse.Namespace) -> int:
    from edgespec.target.serve import serve
    asyncio.run(serve(target_config(a)))
    return 0


def _run_draft(a: argparse.Namespace) -> int:
    from edgespec.draft.serve import serve
    asyncio.run(serve(draft_config(a), link_spec_from_args(a)))
    return 0


def _run_orchestrator(a: argparse.Namespace) -> int:
    from edgespec.orchestrator.serve import serve
    asyncio.run(serve(orchestrator_config(a)))
    return 0


def _generate_flags(p: argparse.ArgumentParser, prompt_required: bool = True) -> None:
    """The SDK's generate options as flags of the same names; unset (None) ones are left to the server."""
    p.add_argument("--prompt", required=prompt_required, help="prompt text (chat template applied)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="most tokens to generate")
    p.add_argument("--temperature", type=float, default=None, help="0 is greedy")
    p.add_argument("--top-k", type=int, default=None, help="0 disables")
    p.add_argument("--top-p", type=float, default=None, help="nucleus mass in (0, 1]")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--acceptance", default=None,
                   help="exact | rejection (default by temperature); lossy: fly | dropmatch | semantic")
    p.add_argument("--acceptance-param", action="append", default=[], metavar="NAME=VALUE",
                   help="a lossy rule's parameter, repeatable (e.g. window=3, dropout_criterion=naive)")
    p.add_argument("--draft-length", default=None,
                   help="draft-length policy: fixed, heuristic, adaedl, svip, auto, server")
    p.add_argument("--k", type=int, default=None, help="draft tokens per round (first round if adaptive)")
    p.add_argument("--k-max", type=int, default=None, help="cap for adaptive policies")
    p.add_argument("--proactive", action="store_true", help="draft ahead while each verdict is in flight")
    p.add_argument("--early-stop", default=None, help="auto's entropy stop: adaedl, svip, none")
    p.add_argument("--raw", action="store_true", help="skip the chat template")


def generate_options(a: argparse.Namespace) -> dict:
    """The SDK's generate options from the flags of the same names (None: left to the server)."""
    from edgespec_client.convert import OPTIONS
    options = {name: getattr(a, name) for name in OPTIONS if getattr(a, name, None) is not None}
    if a.acceptance_param:
        options["acceptance_params"] = acceptance_params(a.acceptance_param)
    return options


def acceptance_params(pairs: list[str]) -> dict:
    """NAME=VALUE strings -> a dict, each VALUE parsed as the type of its field in common.proto's
    AcceptanceParams (an unknown NAME is passed on as text: the SDK names it)."""
    from google.protobuf.descriptor import FieldDescriptor
    from edgespec.v1 import common_pb2
    parse = {FieldDescriptor.CPPTYPE_FLOAT: float, FieldDescriptor.CPPTYPE_DOUBLE: float,
             FieldDescriptor.CPPTYPE_INT32: int, FieldDescriptor.CPPTYPE_INT64: int,
             FieldDescriptor.CPPTYPE_UINT32: int, FieldDescriptor.CPPTYPE_UINT64: int}
    fields = common_pb2.AcceptanceParams.DESCRIPTOR.fields_by_name
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--acceptance-param: expected NAME=VALUE, got {pair!r}")
        kind = parse.get(fields[name].cpp_type, str) if name in fields else str
        try:
            out[name] = kind(value)
        except ValueError:
            raise ValueError(f"--acceptance-param {name}: expected {kind.__name__} text, got {value!r}") from None
    return out


def _run_generate(a: argparse.Namespace) -> int:
    from edgespec.console import run_generate
    from edgespec.telemetry.tracing import setup_tracing
    tracing = setup_tracing("edgespec-cli", instrument_grpc=False)  # the SDK's `generate` span, if OTEL_* asks
    try:
        return run_generate(a.server, a.prompt, generate_options(a), as_json=a.json, timeout=a.timeout,
                            connection=sdk_connection(a))
    finally:
        if tracing is not None:
            tracing.shutdown()


def _lazy(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """A command whose implementation is imported only when it runs (the CLI starts light)."""
    def run(a: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), function)(a)
    return run


def _standalone_orchestrator_flags(orch: argparse.ArgumentParser) -> None:
    _server_flags(orch, 50053)
    _orchestrator_flags(orch)
    orch.add_argument("--draft", required=True, help="draft service HOST:PORT")
    d = _orchestrator_defaults()
    orch.add_argument("--tokenizer", default=d.tokenizer, help="model spec whose tokenizer to use")
    orch.add_argument("--max-sessions", type=int, default=d.max_sessions)
    orch.add_argument("--max-sessions-per-caller", type=int, default=None,
                      help="live generations one caller (token name, else peer IP) may hold (default: half)")
    orch.add_argument("--max-prompt-tokens", type=int, default=d.max_prompt_tokens)


def _draft_parser(p: argparse.ArgumentParser) -> None:
    _server_flags(p, DEFAULT_DRAFT_PORT)
    _model_flags(p)
    _orchestrator_flags(p)
    _telemetry_flags(p, feed=True)
    add_emulation_flags(p)
    p.add_argument("--no-orchestrator", action="store_true", help="serve only the Drafter service, not the SDK endpoint")
    p.add_argument("--vocab-trim", default=None,
                   help="trim file (`edgespec vocabtrim build`): keep only its tokens in the draft head")
    _draft_runtime_flags(p)


def _target_parser(p: argparse.ArgumentParser) -> None:
    _target_flags(p)
    _telemetry_flags(p, feed=False)


def _orchestrator_parser(p: argparse.ArgumentParser) -> None:
    _telemetry_flags(p, feed=True)
    _standalone_orchestrator_flags(p)


def _generate_parser(p: argparse.ArgumentParser) -> None:
    _generate_flags(p)
    p.add_argument("--server", default=f"127.0.0.1:{DEFAULT_DRAFT_PORT}", help="SDK endpoint HOST:PORT")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--timeout", type=float, default=600.0, help="deadline for the call, s")
    add_client_security_flags(p, upstream=False)


def _demo_parser(p: argparse.ArgumentParser) -> None:
    _generate_flags(p, prompt_required=False)
    p.add_argument("--model", default="smollm2", help="preset for both draft and target")


def _lazy_flags(module: str, function: str) -> Callable[[argparse.ArgumentParser], None]:
    """Flags whose module is imported only when its command is the one parsed."""
    def add(p: argparse.ArgumentParser) -> None:
        getattr(importlib.import_module(module), function)(p)
    return add


def _bench_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("mode", nargs="?", choices=("capacity",),
                   help="`capacity`: N simulated devices against one target (--sessions, --modes)")
    _lazy_flags("edgespec.bench.run", "add_bench_flags")(p)
    _lazy_flags("edgespec.bench.capacity", "add_capacity_flags")(p)


def _run_bench(a: argparse.Namespace) -> int:
    if a.mode == "capacity":
        return _lazy("edgespec.bench.capacity", "run_capacity")(a)
    return _lazy("edgespec.bench.run", "run_bench")(a)


# name: (run, add its flags, help)
COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], Callable[[argparse.ArgumentParser], None], str]] = {
    "target": (_run_target, _target_parser, "serve the target verifier (edge server / GPU side)"),
    "draft": (_run_draft, _draft_parser, "serve the draft model (+ the orchestrator) on the device"),
    "orchestrator": (_run_orchestrator, _orchestrator_parser, "serve the orchestrator in its own process"),
    "generate": (_run_generate, _generate_parser, "generate through an orchestrator (SDK endpoint)"),
    "demo": (_lazy("edgespec.demo", "run_demo"), _demo_parser,
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
