"""TargetConfig: everything `edgespec target` is configured with (CLI flags map 1:1)."""

from __future__ import annotations

from dataclasses import dataclass

from edgespec.model_service import ModelServiceConfig


@dataclass(frozen=True)
class TargetConfig(ModelServiceConfig):
    """The target verifier service's settings: a model service plus the optional calibrated
    semantic head file (`models/semantic_head.py`) the `semantic` rule scores with."""

    semantic_head: str | None = None
