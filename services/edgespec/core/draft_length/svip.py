"""`svip`: SVIP's self-verification length policy (Zhang et al., arXiv:2411.18462). Draft up to
k_max tokens; stop after the first token whose draft entropy gives sqrt(0.15 * H) > h (h = 0.3:
H > 0.6 nats). The triggering token stays in the draft, as in the official code."""

from __future__ import annotations

from edgespec.core.draft_length.base import PolicyConfig
from edgespec.core.types import DraftPlan, EntropyStop, StepResult

SVIP_C = 0.15  # the constant in sqrt(c * H), hard-coded in the official code


class Svip:
    """A fixed entropy threshold; nothing to learn across rounds."""

    name = "svip"

    def __init__(self, config: PolicyConfig = PolicyConfig()) -> None:
        self.config = config
        self.stop = EntropyStop(max_entropy=config.svip_h ** 2 / SVIP_C, keep_trigger=True)

    def plan(self) -> DraftPlan:
        k = self.config.k_max
        return DraftPlan(k=k, stop=self.stop, ahead=self.config.ahead(k))

    def observe(self, step: StepResult) -> None:
        """SVIP's threshold is fixed."""
