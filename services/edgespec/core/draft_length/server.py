"""`server`: server-only generation — the target generates every token itself and streams them
back in one round trip; the draft only follows along. The baseline `auto` falls back to."""

from __future__ import annotations

from edgespec.core.draft_length.base import PolicyConfig
from edgespec.core.types import DraftPlan, StepResult

CHUNK = 1 << 20  # ask for everything at once; the loop clips it to the request's budget


class ServerOnly:
    """Never drafts."""

    name = "server"

    def __init__(self, config: PolicyConfig = PolicyConfig()) -> None:
        self.config = config

    def plan(self) -> DraftPlan:
        return DraftPlan(k=0, server_tokens=CHUNK)

    def observe(self, step: StepResult) -> None:
        """Nothing to learn."""
