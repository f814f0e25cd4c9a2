"""`fixed`: the same k every round — Leviathan et al.'s fixed gamma and the null-object policy."""

from __future__ import annotations

from edgespec.core.draft_length.base import PolicyConfig
from edgespec.core.types import DraftPlan, StepResult


class FixedK:
    """Always propose k tokens (1..32); optionally pre-draft the next block proactively."""

    name = "fixed"

    def __init__(self, config: PolicyConfig | int = PolicyConfig()) -> None:
        self.config = config if isinstance(config, PolicyConfig) else PolicyConfig(k=config)
        self.k = self.config.k

    def plan(self) -> DraftPlan:
        return DraftPlan(k=self.k, ahead=self.config.ahead(self.k))

    def observe(self, step: StepResult) -> None:
        """Fixed: nothing to learn."""
