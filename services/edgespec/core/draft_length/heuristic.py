"""`heuristic`: Hugging Face assisted generation's schedule — k + 2 after a fully accepted round,
k - 1 (at least 1) otherwise, capped at k_max. A baseline users already know."""

from __future__ import annotations

from edgespec.core.draft_length.base import PolicyConfig
from edgespec.core.types import DraftPlan, StepResult


class Heuristic:
    """HF's `num_assistant_tokens_schedule="heuristic"`, per request."""

    name = "heuristic"

    def __init__(self, config: PolicyConfig = PolicyConfig()) -> None:
        self.config = config
        self.k = min(config.k, config.k_max)

    def plan(self) -> DraftPlan:
        return DraftPlan(k=self.k, ahead=self.config.ahead(self.k))

    def observe(self, step: StepResult) -> None:
        if step.server or not step.drafted:
            return
        full = step.accepted == step.drafted
        self.k = min(self.config.k_max, self.k + 2) if full else max(1, self.k - 1)
