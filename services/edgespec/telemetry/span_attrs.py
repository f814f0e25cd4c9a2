"""Span attribute names: the one list that the producers (orchestrator, target, draft, the round
observer) write and the offline readers (trace report, span files) read back, so a typo is an
AttributeError in a test rather than an empty report column. Names only; what sets them and when
lives with each producer. (The SDK's own `generate` span names its few attributes itself: it may
not import `edgespec`.)
"""

from __future__ import annotations


class SpanAttr:
    """`edgespec.*` attributes (paper notation: k drafted, accepted, tau incl. the bonus)."""

    SESSION = "edgespec.session"                     # the target session id every span of a generation carries
    ROUND = "edgespec.round"                         # 0-based round number
    RULE = "edgespec.rule"                           # acceptance rule name
    LOSSLESS = "edgespec.lossless"
    POLICY = "edgespec.policy"                       # draft-length policy name
    PROMPT_TOKENS = "edgespec.prompt_tokens"
    MAX_NEW_TOKENS = "edgespec.max_new_tokens"
    TARGET_MODEL = "edgespec.target_model"
    DRAFT_MODEL = "edgespec.draft_model"
    K = "edgespec.k"                                 # tokens drafted this round
    K_PLANNED = "edgespec.k_planned"                 # what the policy asked for
    ACCEPTED = "edgespec.accepted"
    RELAXED_ACCEPTED = "edgespec.relaxed_accepted"   # accepted beyond exact match (lossy rules)
    PREDRAFTED = "edgespec.predrafted"               # drafted proactively last round
    TOKENS = "edgespec.tokens"                       # committed this round
    SERVER = "edgespec.server"                       # a server-only run rather than a speculative round
    SERVER_TOKENS = "edgespec.server_tokens"
    DRAFT_MS = "edgespec.draft_ms"
    VERIFY_MS = "edgespec.verify_ms"
    QUEUE_MS = "edgespec.queue_ms"
    ROUND_TRIP_MS = "edgespec.round_trip_ms"
    BYTES_UP = "edgespec.bytes_up"
    BYTES_DOWN = "edgespec.bytes_down"
    NET_RTT_MS = "net.rtt_ms"                        # round trip minus the target's wait and compute
    GENERATED_TOKENS = "edgespec.generated_tokens"
    ROUNDS = "edgespec.rounds"
    TAU = "edgespec.tau"
    RESUMES = "edgespec.resumes"                     # sessions reopened after a broken stream
    FINISH_REASON = "edgespec.finish_reason"


NAMES: frozenset[str] = frozenset(v for k, v in vars(SpanAttr).items() if k.isupper())
