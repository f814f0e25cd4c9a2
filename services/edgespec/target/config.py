"""TargetConfig: everything `edgespec target` is configured with (CLI flags map 1:1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgespec.model_service import ModelServiceConfig
from edgespec.models.engine_config import EngineConfig


@dataclass(frozen=True)
class TargetConfig(ModelServiceConfig):
    """The target verifier service's settings: a model service, its batch engine's limits (KV pool,
    batch budget) and the optional calibrated semantic head file (`models/semantic_head.py`) the
    `semantic` rule scores with."""

    semantic_head: str | None = None
    engine: EngineConfig = field(default_factory=EngineConfig)
