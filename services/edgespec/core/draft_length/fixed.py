"""`fixed`: the same k every round — the null-object policy the loop uses when nothing adapts."""

from __future__ import annotations

from edgespec.core.types import MAX_DRAFT_TOKENS


class FixedK:
    """Always propose k tokens (1..32), as in Leviathan et al.'s fixed-gamma speculative decoding."""

    name = "fixed"

    def __init__(self, k: int = 4) -> None:
        if not 1 <= k <= MAX_DRAFT_TOKENS:
            raise ValueError(f"k: must be in 1..{MAX_DRAFT_TOKENS}, got {k}")
        self.k = k

    def next_k(self) -> int:
        return self.k

    def observe(self, drafted: int, accepted: int) -> None:
        """Fixed: nothing to learn."""
