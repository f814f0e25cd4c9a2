"""TargetConfig: everything `edgespec target` is configured with (CLI flags map 1:1)."""

from __future__ import annotations

from dataclasses import dataclass

from edgespec.model_service import ModelServiceConfig


@dataclass(frozen=True)
class TargetConfig(ModelServiceConfig):
    """The target verifier service's settings: a model service with nothing to add yet."""
