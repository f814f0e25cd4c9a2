"""ResolvedSpec: a SessionSpec resolved once — its acceptance rule (checked against the sampling
params) and what that rule needs. Sessions (draft, target, remote proxies) take this value and
never look the rule up again. It is NOT the wire form (`rpc.codec`) nor the orchestrator's whole
request (`orchestrator/request.py` adds the draft-length policy on top).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edgespec.core.acceptance import AcceptanceRule, Needs, get_rule
from edgespec.core.types import SessionSpec


@dataclass(frozen=True)
class ResolvedSpec:
    """`spec` with its rule and the rule's needs under `spec.acceptance_params`."""

    spec: SessionSpec
    rule: AcceptanceRule
    needs: Needs

    @classmethod
    def of(cls, spec: SessionSpec) -> ResolvedSpec:
        """Resolve `spec` (ValueError names `acceptance` or the sampling field the rule refuses)."""
        rule = get_rule(spec.acceptance)
        rule.check(spec.params)
        return cls(spec, rule, rule.needs(spec.acceptance_params))

    def with_draft_hidden(self, hidden_size: int) -> ResolvedSpec:
        """The same session asking the draft for its hidden states (of size `hidden_size`)."""
        return replace(self, spec=replace(self.spec, send_hidden_states=True, draft_hidden_size=hidden_size))
