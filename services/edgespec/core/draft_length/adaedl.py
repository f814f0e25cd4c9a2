"""`adaedl`: AdaEDL early draft stopping (Agrawal et al., arXiv:2410.18351). Before drafting token
i >= 2, stop if the entropy lower bound on its acceptance 1 - sqrt(gamma * H(q_i)) falls below
lambda, i.e. H(q_i) > (1 - lambda)^2 / gamma. After each round lambda follows the acceptance rate:
AR <- b1 AR + (1 - b1) n_a/n_d; lambda' = lambda + eps if AR < alpha, lambda - eps on the decrease
branch; lambda <- b2 lambda + (1 - b2) lambda'. The decrease branch is ambiguous in the sources
(algorithms.md §3.5): "a" = AR >= alpha and the round did not hit the cap fully accepted (the
Algorithm 1 transcription, default); "b" = AR > alpha and it did.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgespec.core.draft_length.base import PolicyConfig
from edgespec.core.types import DraftPlan, EntropyStop, StepResult


@dataclass(frozen=True)
class AdaEdlParams:
    """The paper's defaults."""

    gamma: float = 0.2
    beta1: float = 0.5
    beta2: float = 0.9
    epsilon: float = 0.01
    alpha: float = 0.9
    decrease_branch: str = "a"


class AdaEdl:
    """Per-request AdaEDL state: lambda and the acceptance-rate EMA."""

    name = "adaedl"

    def __init__(self, config: PolicyConfig = PolicyConfig(), params: AdaEdlParams = AdaEdlParams()) -> None:
        if params.decrease_branch not in ("a", "b"):
            raise ValueError(f"decrease_branch: must be 'a' or 'b', got {params.decrease_branch!r}")
        self.config, self.params = config, params
        self.lam = config.adaedl_lambda
        self.acceptance_rate = params.alpha  # start at the target: no push either way

    @property
    def stop(self) -> EntropyStop:
        return EntropyStop(max_entropy=(1.0 - self.lam) ** 2 / self.params.gamma, keep_trigger=False)

    def plan(self) -> DraftPlan:
        k = self.config.k_max
        return DraftPlan(k=k, stop=self.stop, ahead=self.config.ahead(k))

    def observe(self, step: StepResult) -> None:
        if step.server or not step.drafted:
            return
        p = self.params
        self.acceptance_rate = p.beta1 * self.acceptance_rate + (1 - p.beta1) * step.accepted / step.drafted
        capped = step.accepted == self.config.k_max
        if self.acceptance_rate < p.alpha:
            target = self.lam + p.epsilon
        elif (p.decrease_branch == "a" and not capped) or (
                p.decrease_branch == "b" and capped and self.acceptance_rate > p.alpha):
            target = self.lam - p.epsilon
        else:
            target = self.lam
        self.lam = min(0.999, max(0.001, p.beta2 * self.lam + (1 - p.beta2) * target))
