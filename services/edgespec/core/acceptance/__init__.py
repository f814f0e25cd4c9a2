"""Acceptance rules by name. Each rule is one file; `RULES` is the registry the services use."""

from edgespec.core.acceptance.base import AcceptanceRule, Outcome
from edgespec.core.acceptance.exact import ExactMatch
from edgespec.core.acceptance.rejection import RejectionSampling

RULES: dict[str, AcceptanceRule] = {rule.name: rule for rule in (ExactMatch(), RejectionSampling())}


def get_rule(name: str) -> AcceptanceRule:
    """The rule registered as `name`; ValueError naming the field otherwise."""
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(f"acceptance: unknown rule {name!r}; known: {', '.join(sorted(RULES))}") from None


__all__ = ["RULES", "AcceptanceRule", "Outcome", "get_rule"]
