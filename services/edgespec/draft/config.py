"""DraftConfig: everything `edgespec draft` is configured with (CLI flags map 1:1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgespec.model_service import ModelServiceConfig
from edgespec.models.engine_config import EngineConfig
from edgespec.orchestrator.config import OrchestratorConfig


@dataclass(frozen=True)
class DraftConfig(ModelServiceConfig):
    """The draft service's settings; `orchestrator` is served in-process unless `embed` is off.
    (Link emulation is not a setting of the service: `draft.serve.emulated_link` composes it in.)
    `vocab_trim`, when set, is a trim file whose tokens alone the draft head keeps (VocabTrim).
    `runtime` runs the draft model (`torch`, `llamacpp`; None: the preset's default) on
    `draft_threads` llama.cpp threads (a torch draft follows `threads`). With `engine`, every
    session's draft steps run in one shared batch engine of those limits (`--batch`); without, each
    session has its own context on one model thread."""

    embed_orchestrator: bool = True
    orchestrator: OrchestratorConfig = field(default_factory=OrchestratorConfig)
    vocab_trim: str | None = None
    runtime: str | None = None
    draft_threads: int = 1
    engine: EngineConfig | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.telemetry.feed_publish and not self.embed_orchestrator:
            raise ValueError("feed_publish: the round feed comes from the orchestrator; drop --no-orchestrator "
                             "or give --feed-publish to `edgespec orchestrator`")
