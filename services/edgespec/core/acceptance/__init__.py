"""Acceptance rules by name. Each rule is one file; `RULES` is the registry the services use.
Lossless: exact, rejection. Lossy (semantic acceptance): fly, dropmatch, semantic."""

from edgespec.core.acceptance.base import AcceptanceRule, Needs, Outcome, RuleInputs
from edgespec.core.acceptance.dropmatch import DropMatch
from edgespec.core.acceptance.exact import ExactMatch
from edgespec.core.acceptance.fly import Fly
from edgespec.core.acceptance.rejection import RejectionSampling
from edgespec.core.acceptance.semantic import Semantic

RULES: dict[str, AcceptanceRule] = {
    rule.name: rule for rule in (ExactMatch(), RejectionSampling(), Fly(), DropMatch(), Semantic())}


def get_rule(name: str) -> AcceptanceRule:
    """The rule registered as `name`; ValueError naming the field otherwise."""
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(f"acceptance: unknown rule {name!r}; known: {', '.join(sorted(RULES))}") from None


__all__ = ["RULES", "AcceptanceRule", "Needs", "Outcome", "RuleInputs", "get_rule"]
