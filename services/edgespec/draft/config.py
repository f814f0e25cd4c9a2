"""DraftConfig: everything `edgespec draft` is configured with (CLI flags map 1:1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgespec.orchestrator.config import OrchestratorConfig
from edgespec.rpc.server import ServerOptions


@dataclass(frozen=True)
class DraftConfig:
    """The draft service's settings; `orchestrator` is served in-process unless `embed` is off."""

    model: str = "smollm2"
    dtype: str = "float32"
    device: str = "cpu"
    threads: int = 0                    # torch intra-op threads; 0 keeps torch's default
    max_sessions: int = 16
    idle_ttl_s: float = 300.0
    max_prompt_tokens: int = 4096
    max_new_tokens: int = 4096
    embed_orchestrator: bool = True
    orchestrator: OrchestratorConfig = field(default_factory=OrchestratorConfig)
    server: ServerOptions = field(default_factory=ServerOptions)
