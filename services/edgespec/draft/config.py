"""DraftConfig: everything `edgespec draft` is configured with (CLI flags map 1:1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgespec.model_service import ModelServiceConfig
from edgespec.orchestrator.config import OrchestratorConfig


@dataclass(frozen=True)
class DraftConfig(ModelServiceConfig):
    """The draft service's settings; `orchestrator` is served in-process unless `embed` is off."""

    embed_orchestrator: bool = True
    orchestrator: OrchestratorConfig = field(default_factory=OrchestratorConfig)
