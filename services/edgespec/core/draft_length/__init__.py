"""Draft-length policies by name: `POLICIES` is the registry, `make_policy` builds one per request.

fixed (constant k), heuristic (HF's +2/-1 schedule), adaedl and svip (entropy early stops),
auto (latency-aware k with server-only fallback), server (server-only generation).
"""

from collections.abc import Callable

from edgespec.core.draft_length.adaedl import AdaEdl, AdaEdlParams
from edgespec.core.draft_length.auto import Auto, AutoParams
from edgespec.core.draft_length.base import DraftLengthPolicy, PolicyConfig
from edgespec.core.draft_length.estimates import LinkEstimates
from edgespec.core.draft_length.fixed import FixedK
from edgespec.core.draft_length.heuristic import Heuristic
from edgespec.core.draft_length.server import ServerOnly
from edgespec.core.draft_length.svip import Svip

POLICIES: dict[str, Callable[[PolicyConfig, LinkEstimates | None], DraftLengthPolicy]] = {
    "fixed": lambda config, link: FixedK(config),
    "heuristic": lambda config, link: Heuristic(config),
    "adaedl": lambda config, link: AdaEdl(config),
    "svip": lambda config, link: Svip(config),
    "auto": lambda config, link: Auto(config, link),
    "server": lambda config, link: ServerOnly(config),
}


def make_policy(name: str, config: PolicyConfig = PolicyConfig(),
                link: LinkEstimates | None = None) -> DraftLengthPolicy:
    """A fresh policy `name` for one request; `link` shares cost estimates across requests."""
    try:
        factory = POLICIES[name]
    except KeyError:
        raise ValueError(f"draft_length: unknown policy {name!r}; known: {', '.join(sorted(POLICIES))}") from None
    return factory(config, link)


__all__ = ["POLICIES", "AdaEdl", "AdaEdlParams", "Auto", "AutoParams", "DraftLengthPolicy", "FixedK",
           "Heuristic", "LinkEstimates", "PolicyConfig", "ServerOnly", "Svip", "make_policy"]
