"""The draft-length policy protocol: `next_k()` before a round, `observe()` after it.
Policies are per-session objects; they know nothing about models or the network transport.
"""

from __future__ import annotations

from typing import Protocol


class DraftLengthPolicy(Protocol):
    """Chooses k for the next round and learns from each round's outcome."""

    name: str

    def next_k(self) -> int:
        """Draft tokens to propose next round (>= 0)."""

    def observe(self, drafted: int, accepted: int) -> None:
        """Feed back how many of the drafted tokens the target accepted."""
