"""ModelServiceConfig: the settings every model-serving process (target, draft) shares — which
model, where it runs, session limits and transport. Role configs extend it; it holds no logic."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgespec.rpc.server import ServerOptions
from edgespec.telemetry.options import TelemetryOptions


@dataclass(frozen=True)
class ModelServiceConfig:
    """A model server's settings (CLI flags map 1:1)."""

    model: str = "smollm2"              # preset, HF path/id or .gguf file
    dtype: str = "float32"
    device: str = "cpu"
    threads: int = 0                    # torch intra-op threads; 0 keeps torch's default
    max_sessions: int = 16
    idle_ttl_s: float = 300.0
    open_ttl_s: float = 60.0            # idle TTL of a session until its first block (then idle_ttl_s)
    max_sessions_per_caller: int | None = None   # per token name / peer IP; None: half of max_sessions
    max_prompt_tokens: int = 4096
    max_new_tokens: int = 4096
    server: ServerOptions = field(default_factory=ServerOptions)
    telemetry: TelemetryOptions = field(default_factory=TelemetryOptions)

    def __post_init__(self) -> None:
        if self.max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {self.max_sessions}")
        if self.idle_ttl_s <= 0 or self.open_ttl_s <= 0:
            raise ValueError(f"idle_ttl_s and open_ttl_s must be > 0, got {self.idle_ttl_s} and {self.open_ttl_s}")
        if self.max_sessions_per_caller is not None and self.max_sessions_per_caller < 1:
            raise ValueError(f"max_sessions_per_caller must be >= 1, got {self.max_sessions_per_caller}")

    @property
    def per_caller_cap(self) -> int:
        """Live sessions one caller may hold (`max_sessions_per_caller`, default half the cap)."""
        return self.max_sessions_per_caller or max(1, self.max_sessions // 2)
