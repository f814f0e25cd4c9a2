"""The serving commands' side of the CLI — `edgespec target`, `draft` and `orchestrator`: their
flags (one per config field, defaults from the configs) and the frozen configs built from them.
Importing it loads no torch (the configs are imported when a command builds one); it does not
parse argv or dispatch commands (`cli.py`) and knows nothing of `generate` (`generate_cli.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import TYPE_CHECKING

from edgespec.net.cli import add_emulation_flags, link_spec_from_args
from edgespec.security_flags import add_client_security_flags, add_server_security_flags, client_security, server_security

if TYPE_CHECKING:  # the configs (and torch below them) load only when a command builds one
    from edgespec.draft.config import DraftConfig
    from edgespec.orchestrator.config import OrchestratorConfig
    from edgespec.rpc.server import ServerOptions
    from edgespec.target.config import TargetConfig
    from edgespec.telemetry.options import TelemetryOptions

DEFAULT_TARGET_PORT, DEFAULT_DRAFT_PORT, DEFAULT_ORCHESTRATOR_PORT = 50051, 50052, 50053


def _server_flags(p: argparse.ArgumentParser, port: int) -> None:
    from edgespec.rpc.server import MAX_MESSAGE_BYTES
    p.add_argument("--listen", default=f"127.0.0.1:{port}", help="HOST:PORT to serve on (port 0: any)")
    p.add_argument("--max-message-bytes", type=int, default=MAX_MESSAGE_BYTES,
                   help="largest gRPC message taken (default 4 MiB; edgespec's own messages stay under 1 MiB)")
    p.add_argument("--no-reflection", action="store_true", help="disable gRPC server reflection")
    p.add_argument("--grace", type=float, default=5.0, help="seconds live sessions get on shutdown")
    p.add_argument("--keepalive-time", type=float, default=20.0, help="keepalive ping interval, s")
    p.add_argument("--keepalive-timeout", type=float, default=5.0, help="keepalive ack timeout, s")
    p.add_argument("--ready-file", help="write the bound HOST:PORT here once serving")
    p.add_argument("--first-message-timeout", type=float, default=10.0,
                   help="seconds a call may take to send its first request message")
    p.add_argument("--max-connection-age", type=float, default=None, metavar="SECONDS",
                   help="close each client connection (GOAWAY) after about this long, so clients behind a load "
                   "balancer or dns:/// re-balance onto new replicas; its streams get --grace more seconds, then "
                   "resume elsewhere (default: never)")
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
    _engine_flags(p)


def _engine_flags(p: argparse.ArgumentParser) -> None:
    """The batch engine's flags (target; draft with --batch), defaults from EngineConfig."""
    from edgespec.models.engine_config import DRAFT_GATHER_SHARE, EngineConfig
    d = EngineConfig()
    p.add_argument("--kv-cache-tokens", type=int, default=d.kv_cache_tokens,
                   help="KV positions preallocated for all sessions; a target session reserves prompt + "
                   "max_new_tokens + 1, a batching draft splits them evenly over its sessions")
    p.add_argument("--kv-cache-memory-fraction", type=float, default=None, metavar="F",
                   help="on CUDA: size the KV pool to this share (0..1) of the GPU memory free after the model "
                   "loaded, instead of --kv-cache-tokens")
    p.add_argument("--max-batch-tokens", type=int, default=d.max_batch_tokens, help="most tokens in one batched forward")
    p.add_argument("--max-batch-sessions", type=int, default=d.max_batch_sessions,
                   help="most sessions in one batched forward (1: one session per forward, unbatched)")
    p.add_argument("--prefill-chunk", type=int, default=d.prefill_chunk, help="most prompt tokens of a session per forward")
    p.add_argument("--admission-wait", type=float, default=d.admission_wait_s,
                   help="seconds a new session waits for KV room before RESOURCE_EXHAUSTED")
    p.add_argument("--gather-ms", type=float, default=d.gather_ms, help="under load, most ms a step waits for the "
                   "sessions the last step served")
    p.add_argument("--gather-share", type=float, default=None, help="... and at most this share of the last "
                   f"step's time (default: target {d.gather_share:g}, batching draft {DRAFT_GATHER_SHARE:g})")


def engine_config(a: argparse.Namespace, gather_share: float | None = None):
    """The engine flags as an EngineConfig; `gather_share`: the role's default for --gather-share."""
    from edgespec.models.engine_config import EngineConfig
    share = a.gather_share if a.gather_share is not None else gather_share
    return EngineConfig(kv_cache_tokens=a.kv_cache_tokens, kv_cache_memory_fraction=a.kv_cache_memory_fraction,
                        max_batch_tokens=a.max_batch_tokens, max_batch_sessions=a.max_batch_sessions,
                        prefill_chunk=a.prefill_chunk, admission_wait_s=a.admission_wait, gather_ms=a.gather_ms,
                        **({} if share is None else {"gather_share": share}))


def _orchestrator_defaults():
    """OrchestratorConfig's defaults, the one home of the orchestrator flags' (imported only by the
    serving commands, which load the core anyway)."""
    from edgespec.orchestrator.config import OrchestratorConfig
    return OrchestratorConfig()


def _orchestrator_flags(p: argparse.ArgumentParser) -> None:
    d = _orchestrator_defaults()
    p.add_argument("--target", default=d.target, help="the target's replicas: HOST:PORT, a comma-separated list, "
                   "or dns:///NAME:PORT (each new session goes round-robin to a healthy one)")
    p.add_argument("--k", type=int, default=d.default_k, help="default draft length for requests that set none")
    p.add_argument("--k-max", type=int, default=d.default_k_max, help="default cap for adaptive draft-length policies")
    p.add_argument("--draft-length", default=d.default_policy, help="default draft-length policy for requests "
                   "that name none (fixed, heuristic, adaedl, svip, auto, server)")
    p.add_argument("--round-timeout", type=float, default=d.round_timeout_s, help="seconds to wait for a verdict")
    p.add_argument("--session-timeout", type=float, default=d.session_timeout_s)
    p.add_argument("--max-resumes", type=int, default=d.resume.max_resumes, help="sessions a generation may reopen "
                   "(prompt + committed tokens, on a healthy replica) after a broken target or draft stream")
    p.add_argument("--reopen-timeout", type=float, default=d.resume.reopen_timeout_s,
                   help="seconds one reopen waits for a replica to become ready")
    add_client_security_flags(p, upstream=True)
    p.add_argument("--max-prompt-chars", type=int, default=d.max_prompt_chars,
                   help="longest text prompt, in characters, checked before tokenizing")


def server_options(a: argparse.Namespace) -> ServerOptions:
    from edgespec.rpc.server import ServerOptions
    return ServerOptions(listen=a.listen, max_message_bytes=a.max_message_bytes, **server_security(a),
                         grace_s=a.grace, keepalive_time_s=a.keepalive_time,
                         keepalive_timeout_s=a.keepalive_timeout, ready_file=a.ready_file,
                         first_message_timeout_s=a.first_message_timeout, max_connection_age_s=a.max_connection_age)


def _model_service(a: argparse.Namespace) -> dict:
    return {"model": a.model, "dtype": a.dtype, "device": a.device, "threads": a.threads,
            "max_sessions": a.max_sessions, "idle_ttl_s": a.idle_ttl, "open_ttl_s": a.open_ttl,
            "max_sessions_per_caller": a.max_sessions_per_caller, "max_prompt_tokens": a.max_prompt_tokens,
            "max_new_tokens": a.max_new_tokens, "server": server_options(a), "telemetry": telemetry_options(a)}


def target_config(a: argparse.Namespace) -> TargetConfig:
    from edgespec.target.config import TargetConfig
    return TargetConfig(**_model_service(a), semantic_head=a.semantic_head, engine=engine_config(a))


def orchestrator_config(a: argparse.Namespace, tokenizer: str | None = None) -> OrchestratorConfig:
    from edgespec.orchestrator.config import OrchestratorConfig
    from edgespec.rpc.resume import ResumePolicy
    return OrchestratorConfig(
        target=a.target, draft=getattr(a, "draft", None), tokenizer=tokenizer or a.tokenizer,
        default_policy=a.draft_length, default_k=a.k, default_k_max=a.k_max, max_sessions=a.max_sessions,
        max_sessions_per_caller=a.max_sessions_per_caller, round_timeout_s=a.round_timeout,
        session_timeout_s=a.session_timeout, max_prompt_chars=a.max_prompt_chars,
        max_prompt_tokens=a.max_prompt_tokens, server=server_options(a), telemetry=telemetry_options(a),
        upstream=client_security(a), resume=ResumePolicy(a.max_resumes, a.reopen_timeout))


def draft_config(a: argparse.Namespace) -> DraftConfig:
    from edgespec.draft.config import DraftConfig
    from edgespec.models.engine_config import DRAFT_GATHER_SHARE
    return DraftConfig(**_model_service(a), embed_orchestrator=not a.no_orchestrator,
                       orchestrator=orchestrator_config(a, tokenizer=a.model),
                       vocab_trim=a.vocab_trim, runtime=a.runtime, draft_threads=a.draft_threads,
                       engine=engine_config(a, DRAFT_GATHER_SHARE) if a.batch else None)


def run_target(a: argparse.Namespace) -> int:
    from edgespec.target.serve import serve
    asyncio.run(serve(target_config(a)))
    return 0


def run_draft(a: argparse.Namespace) -> int:
    from edgespec.draft.serve import serve
    asyncio.run(serve(draft_config(a), link_spec_from_args(a)))
    return 0


def run_orchestrator(a: argparse.Namespace) -> int:
    from edgespec.orchestrator.serve import serve
    asyncio.run(serve(orchestrator_config(a)))
    return 0


def _standalone_orchestrator_flags(orch: argparse.ArgumentParser) -> None:
    _server_flags(orch, DEFAULT_ORCHESTRATOR_PORT)
    _orchestrator_flags(orch)
    orch.add_argument("--draft", required=True,
                      help="the draft service: HOST:PORT, a comma-separated list of replicas, or dns:///NAME:PORT")
    d = _orchestrator_defaults()
    orch.add_argument("--tokenizer", default=d.tokenizer, help="model spec whose tokenizer to use")
    orch.add_argument("--max-sessions", type=int, default=d.max_sessions)
    orch.add_argument("--max-sessions-per-caller", type=int, default=None,
                      help="live generations one caller (token name, else peer IP) may hold (default: half)")
    orch.add_argument("--max-prompt-tokens", type=int, default=d.max_prompt_tokens)


def add_draft_flags(p: argparse.ArgumentParser) -> None:
    _server_flags(p, DEFAULT_DRAFT_PORT)
    _model_flags(p)
    _orchestrator_flags(p)
    _telemetry_flags(p, feed=True)
    add_emulation_flags(p)
    p.add_argument("--no-orchestrator", action="store_true", help="serve only the Drafter service, not the SDK endpoint")
    p.add_argument("--vocab-trim", default=None,
                   help="trim file (`edgespec vocabtrim build`): keep only its tokens in the draft head")
    _draft_runtime_flags(p)
    p.add_argument("--batch", action="store_true",
                   help="batch the draft steps of all sessions in one engine (the --kv-cache-tokens and "
                   "--max-batch-* flags size it); pays once many sessions draft at once (8+ on one CPU thread)")
    _engine_flags(p)


def add_target_flags(p: argparse.ArgumentParser) -> None:
    _target_flags(p)
    _telemetry_flags(p, feed=False)


def add_orchestrator_flags(p: argparse.ArgumentParser) -> None:
    _telemetry_flags(p, feed=True)
    _standalone_orchestrator_flags(p)
