"""ServiceMetrics: the Prometheus metrics of an edgespec process, on its own CollectorRegistry,
named after vLLM's speculative-decoding counters with an `edgespec_` prefix. It records; the
HTTP endpoint (`--metrics-listen`) is started by `edgespec.telemetry.runtime`.

vLLM's accept length is 1 + accepted / drafts; here that is
`1 + edgespec_spec_decode_num_accepted_tokens_total / edgespec_spec_decode_num_drafts_total`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from edgespec.core.stats import SpecDecodeStats
from edgespec.core.types import MAX_DRAFT_TOKENS, StepResult

MS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24)
BYTE_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
LENGTH_BUCKETS = tuple(range(1, MAX_DRAFT_TOKENS + 2))


class ServiceMetrics:
    """Every edgespec metric; a process exports the ones its services update (others stay 0)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r, spec = self.registry, "edgespec_spec_decode_num"
        self.drafts = Counter(f"{spec}_drafts", "Speculative rounds (draft blocks verified)", registry=r)
        self.draft_tokens = Counter(f"{spec}_draft_tokens", "Draft tokens proposed", registry=r)
        self.accepted_tokens = Counter(f"{spec}_accepted_tokens", "Draft tokens accepted", registry=r)
        self.accepted_per_pos = Counter(f"{spec}_accepted_tokens_per_pos", "Draft tokens accepted, by draft "
                                        "position (0-based)", ["position"], registry=r)
        self.relaxed_accepted = Counter(f"{spec}_relaxed_accepted_tokens", "Tokens accepted beyond exact "
                                        "match by a lossy rule", ["rule"], registry=r)
        self.generated_tokens = Counter("edgespec_generated_tokens", "Tokens committed (all modes)", registry=r)
        self.server_tokens = Counter("edgespec_server_tokens", "Tokens the target generated alone "
                                     "(server-only mode)", registry=r)
        self.resumes = Counter("edgespec_resumes", "Sessions reopened after a broken stream (target or draft)",
                               registry=r)
        self.requests = Counter("edgespec_requests", "Finished generations", ["finish_reason"], registry=r)
        self.errors = Counter("edgespec_errors", "RPCs answered with an error status", ["method", "code"],
                              registry=r)
        self.accepted_length = Histogram("edgespec_accepted_length", "Tokens committed per speculative round "
                                         "(tau: counts the bonus or correction)", buckets=LENGTH_BUCKETS,
                                         registry=r)
        self.round_seconds = Histogram("edgespec_round_seconds", "Wall time of a speculative round",
                                       buckets=MS_BUCKETS, registry=r)
        self.rtt_seconds = Histogram("edgespec_rtt_seconds", "Network time of a round: round trip minus "
                                     "target queue and compute", buckets=MS_BUCKETS, registry=r)
        self.bytes_up = Histogram("edgespec_bytes_up", "Wire bytes draft -> target per round",
                                  buckets=BYTE_BUCKETS, registry=r)
        self.bytes_down = Histogram("edgespec_bytes_down", "Wire bytes target -> draft per round",
                                    buckets=BYTE_BUCKETS, registry=r)
        self.ttft_seconds = Histogram("edgespec_time_to_first_token_seconds", "Time to first token of a "
                                      "generation", buckets=MS_BUCKETS, registry=r)
        self.verify_seconds = Histogram("edgespec_verify_seconds", "Target compute per block (forward pass "
                                        "and acceptance rule)", buckets=MS_BUCKETS, registry=r)
        self.verify_queue_seconds = Histogram("edgespec_verify_queue_seconds", "Wait for the target's model "
                                              "thread before a block's compute", buckets=MS_BUCKETS, registry=r)
        self.draft_seconds = Histogram("edgespec_draft_seconds", "Draft compute per block",
                                       buckets=MS_BUCKETS, registry=r)
        self.draft_len = Gauge("edgespec_draft_len", "Draft length k of the latest round", registry=r)
        self.sessions_opened = Counter("edgespec_sessions_opened", "Sessions opened (how round-robin spreads "
                                       "them over replicas)", ["service"], registry=r)
        self.live_sessions = Gauge("edgespec_live_sessions", "Live sessions", ["service"], registry=r)
        self.kv_cache_used_tokens = Gauge("edgespec_kv_cache_used_tokens", "KV pool positions reserved by live "
                                          "sessions", ["service"], registry=r)
        self.kv_cache_capacity_tokens = Gauge("edgespec_kv_cache_capacity_tokens", "KV pool positions "
                                              "preallocated", ["service"], registry=r)
        self.batch_sessions = Histogram("edgespec_batch_sessions", "Sessions in one engine step (one forward)",
                                        buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.batch_tokens = Histogram("edgespec_batch_tokens", "Tokens in one engine step (one forward)",
                                      buckets=(1, 4, 16, 64, 128, 256, 512, 1024, 2048), registry=r)

    def observe_engine_step(self, step) -> None:
        """One batch-engine step (a `StepRecord`: the target's, or a batching draft's)."""
        self.batch_sessions.observe(step.sessions)
        self.batch_tokens.observe(step.tokens)

    def watch_kv_pool(self, pool, service: str) -> None:
        """Export a batch engine's KV pool use (read at scrape time) and size."""
        self.kv_cache_used_tokens.labels(service=service).set_function(lambda: pool.used)
        self.kv_cache_capacity_tokens.labels(service=service).set(pool.tokens)

    def observe_round(self, step: StepResult, rule: str) -> None:
        """One step of the loop as the orchestrator saw it (a round, or a server-only token)."""
        self.generated_tokens.inc(len(step.tokens))
        if step.server:
            self.server_tokens.inc(len(step.tokens))
            return
        self.drafts.inc()
        self.draft_tokens.inc(step.drafted)
        self.accepted_tokens.inc(step.accepted)
        for position in range(step.accepted):
            self.accepted_per_pos.labels(position=str(position)).inc()
        if step.relaxed_accepted:
            self.relaxed_accepted.labels(rule=rule).inc(step.relaxed_accepted)
        self.accepted_length.observe(step.accepted + 1)
        self.round_seconds.observe(step.round_ms / 1e3)
        self.rtt_seconds.observe(step.network_ms / 1e3)
        self.bytes_up.observe(step.bytes_up)
        self.bytes_down.observe(step.bytes_down)
        self.draft_len.set(step.drafted)

    def count_error(self, method: str, code: str) -> None:
        """An RPC answered with status `code` (the StatusInterceptor's hook)."""
        self.errors.labels(method=method, code=code).inc()

    def observe_generation(self, stats: SpecDecodeStats, finish_reason: str) -> None:
        self.requests.labels(finish_reason=finish_reason).inc()
        if stats.generated_tokens:
            self.ttft_seconds.observe(stats.ttft_ms / 1e3)

    def names(self) -> set[str]:
        """Every sample name this registry exposes (with _total, _bucket, _sum, _count suffixes)."""
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        return {f"{family.name}{suffix}" for family in self.registry.collect()
                for suffix in suffixes.get(family.type, ("",))}
