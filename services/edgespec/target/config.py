"""TargetConfig: everything `edgespec target` is configured with (CLI flags map 1:1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgespec.rpc.server import ServerOptions


@dataclass(frozen=True)
class TargetConfig:
    """The target verifier service's settings."""

    model: str = "smollm2"
    dtype: str = "float32"
    device: str = "cpu"
    threads: int = 0                    # torch intra-op threads; 0 keeps torch's default
    max_sessions: int = 16
    idle_ttl_s: float = 300.0
    max_prompt_tokens: int = 4096
    max_new_tokens: int = 4096
    server: ServerOptions = field(default_factory=ServerOptions)

    def __post_init__(self) -> None:
        if self.max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {self.max_sessions}")
        if self.idle_ttl_s <= 0:
            raise ValueError(f"idle_ttl_s must be > 0, got {self.idle_ttl_s}")
