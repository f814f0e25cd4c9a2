"""OrchestratorConfig: everything the orchestrator is configured with (CLI flags map 1:1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgespec.core.draft_length import POLICIES, PolicyConfig
from edgespec.core.types import MAX_DRAFT_TOKENS
from edgespec.rpc.resume import ResumePolicy
from edgespec.rpc.security import ClientSecurity
from edgespec.rpc.server import ServerOptions
from edgespec.telemetry.options import TelemetryOptions


@dataclass(frozen=True)
class OrchestratorConfig:
    """Where the target (and, when not in-process, the draft service) lives, plus request limits."""

    target: str = "127.0.0.1:50051"     # HOST:PORT, a comma-separated list, or dns:///NAME:PORT (replicas)
    draft: str | None = None            # a Drafter server (same forms); None = the in-process draft model
    tokenizer: str = "smollm2"          # model spec whose tokenizer and chat template to use
    default_policy: str = "fixed"       # draft-length policy for requests that name none
    default_k: int = PolicyConfig.k          # the policies' own defaults, for requests that set none
    default_k_max: int = PolicyConfig.k_max
    default_max_new_tokens: int = 128
    max_new_tokens: int = 4096
    max_prompt_tokens: int = 4096       # checked here, before the draft or the target sees the prompt
    max_prompt_chars: int = 65536       # a text prompt is bounded before it is tokenized
    max_sessions: int = 16
    max_sessions_per_caller: int | None = None   # live generations per token name / peer IP; None: half
    round_timeout_s: float = 60.0
    session_timeout_s: float = 3600.0
    server: ServerOptions = field(default_factory=ServerOptions)
    telemetry: TelemetryOptions = field(default_factory=TelemetryOptions)
    upstream: ClientSecurity = field(default_factory=ClientSecurity)   # how it dials the target / draft
    resume: ResumePolicy = field(default_factory=ResumePolicy)          # after a broken target/draft stream

    def __post_init__(self) -> None:
        if not 1 <= self.default_k <= MAX_DRAFT_TOKENS:
            raise ValueError(f"default_k must be in 1..{MAX_DRAFT_TOKENS}, got {self.default_k}")
        if self.default_policy not in POLICIES:
            raise ValueError(f"draft_length: unknown policy {self.default_policy!r}; known: {', '.join(POLICIES)}")
        if not 1 <= self.default_k_max <= MAX_DRAFT_TOKENS:
            raise ValueError(f"default_k_max must be in 1..{MAX_DRAFT_TOKENS}, got {self.default_k_max}")
        if self.max_prompt_tokens < 1 or self.max_prompt_chars < 1:
            raise ValueError(f"max_prompt_tokens and max_prompt_chars must be >= 1, got {self.max_prompt_tokens} "
                             f"and {self.max_prompt_chars}")
        if self.max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {self.max_sessions}")
        if self.max_sessions_per_caller is not None and self.max_sessions_per_caller < 1:
            raise ValueError(f"max_sessions_per_caller must be >= 1, got {self.max_sessions_per_caller}")
        if self.round_timeout_s <= 0:
            raise ValueError(f"round_timeout_s must be > 0, got {self.round_timeout_s}")

    @property
    def per_caller_cap(self) -> int:
        """Live generations one caller may hold (`max_sessions_per_caller`, default half the cap)."""
        return self.max_sessions_per_caller or max(1, self.max_sessions // 2)
