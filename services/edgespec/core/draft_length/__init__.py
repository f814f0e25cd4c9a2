"""Draft-length policies by name; `POLICIES` is the registry, `make_policy` builds one per session."""

from collections.abc import Callable

from edgespec.core.draft_length.base import DraftLengthPolicy
from edgespec.core.draft_length.fixed import FixedK

POLICIES: dict[str, Callable[[int], DraftLengthPolicy]] = {"fixed": FixedK}


def make_policy(name: str, k: int) -> DraftLengthPolicy:
    """A fresh policy `name` whose initial/maximum draft length is `k`."""
    try:
        factory = POLICIES[name]
    except KeyError:
        raise ValueError(f"draft_length: unknown policy {name!r}; known: {', '.join(sorted(POLICIES))}") from None
    return factory(k)


__all__ = ["POLICIES", "DraftLengthPolicy", "FixedK", "make_policy"]
