"""`auto`: the orchestrator's latency-aware policy. Each round it picks k* = argmax E[tokens](k) /
T_round(k) from online estimates (cost_model.py), smoothed with an EMA so k does not oscillate;
inside the round an entropy early stop (AdaEDL or SVIP) may end the draft sooner while the draft
is weak (first-position acceptance below 90%). When the model
says speculation loses to the target generating alone — for `hysteresis` rounds in a row, by more
than `margin`, once the request has seen `min_rounds` rounds — it switches the request to
server-only mode: the target streams chunks of tokens (16, doubling) while the draft shadow-drafts each next token, which keeps the draft's cache current
and keeps measuring acceptance without a round trip; when the model says speculation wins by
`margin` for `hysteresis` tokens, the next chunk boundary switches back. Lossless throughout: only
how many tokens are drafted changes. Proactive drafting turns itself on when the expected wait
for a verdict (RTT + verify) exceeds one draft step (a cheap edge runtime), whatever the request
says once the link is measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgespec.core.draft_length.adaedl import AdaEdl
from edgespec.core.draft_length.base import PolicyConfig
from edgespec.core.draft_length.cost_model import Choice, best_k
from edgespec.core.draft_length.estimates import AcceptanceCurve, LinkEstimates
from edgespec.core.draft_length.svip import Svip
from edgespec.core.types import MAX_DRAFT_TOKENS, DraftPlan, StepResult

EARLY_STOPS = {"adaedl": AdaEdl, "svip": Svip, "none": None}


@dataclass(frozen=True)
class AutoParams:
    """Smoothing and switching constants (DSD: EMA 0.4, two strikes before fused mode)."""

    smoothing: float = 0.4
    margin: float = 0.05
    hysteresis: int = 2
    min_rounds: int = 4        # speculative rounds a request sees before it may go server-only
    first_chunk: int = 16      # server-only chunks double from here (a cheap draft can win back soon)
    max_chunk: int = 1024
    strong_draft: float = 0.9  # first-position acceptance above which no entropy early stop runs


class Auto:
    """Per-request state (k, mode, acceptance curve) over link estimates shared per orchestrator."""

    name = "auto"

    def __init__(self, config: PolicyConfig = PolicyConfig(), link: LinkEstimates | None = None,
                 params: AutoParams = AutoParams()) -> None:
        if config.early_stop not in EARLY_STOPS:
            raise ValueError(f"early_stop: unknown {config.early_stop!r}; known: {', '.join(EARLY_STOPS)}")
        early = EARLY_STOPS[config.early_stop]
        self.config, self.params = config, params
        self.link = link if link is not None else LinkEstimates()
        self.early = early(config) if early is not None else None
        self.curve = AcceptanceCurve(config.k_max, prior=self.link.acceptance.values())
        self.k_smooth = float(min(config.k, config.k_max))
        self.server, self.strikes, self.rounds = False, 0, 0
        self.chunk, self.switches = params.first_chunk, 0
        self.last: Choice | None = None
        if self.link.ready:  # the link is already measured: start in the mode it favours
            choice = self._choose()
            self.server = choice.speculative_rate < choice.server_rate

    @property
    def k(self) -> int:
        return max(1, min(self.config.k_max, round(self.k_smooth)))

    def plan(self) -> DraftPlan:
        if self.server:
            chunk, self.chunk = self.chunk, min(self.params.max_chunk, self.chunk * 2)
            return DraftPlan(k=0, server_tokens=chunk)
        stop = self.early.plan().stop if self.early is not None and self._weak_draft() else None
        return DraftPlan(k=self.k, stop=stop, ahead=self._ahead())

    def observe(self, step: StepResult) -> None:
        self.link.observe(step)
        if step.server and step.drafted:  # the draft's shadow token: position-1 acceptance only
            self.curve.observe_iid(bool(step.accepted))
        elif not step.server:
            self.curve.observe(step.drafted, step.accepted)
            self.rounds += 1
        if self.early is not None and not step.server:
            self.early.observe(step)
        choice = self._choose()
        if not step.server:
            self.k_smooth = (1 - self.params.smoothing) * self.k_smooth + self.params.smoothing * choice.k
        losing = choice.speculative_rate < choice.server_rate * (1 - self.params.margin)
        winning = choice.speculative_rate > choice.server_rate * (1 + self.params.margin)
        evidence = self.server or self.rounds >= self.params.min_rounds  # no verdict on a round or two
        self.strikes = self.strikes + 1 if evidence and (winning if self.server else losing) else 0
        if self.strikes >= self.params.hysteresis:  # switch (takes effect at the next plan)
            self.server, self.strikes, self.switches = not self.server, 0, self.switches + 1
            self.chunk = self.params.first_chunk

    def _choose(self) -> Choice:
        self.last = best_k(self.link.snapshot(self.config.k_max), self.curve.values(), self.config.k_max)
        return self.last

    def _weak_draft(self) -> bool:
        """Entropy predicts rejection only for a draft that often disagrees with the target: a
        draft accepted at its first position at least `strong_draft` of the time (llama.cpp's Q8_0
        copy of the target: 97%) agrees on high-entropy tokens too, and stopping there only
        shortens blocks the target would have taken."""
        return self.curve.values()[0] < self.params.strong_draft

    def _ahead(self) -> int:
        """Proactive drafting, on by itself once the link is measured and the wait for a verdict
        (RTT + verify) exceeds one draft step: as many tokens as fit in that wait. Before that,
        only when the request asked for it."""
        if not self.link.ready or not self.link.draft_ms.value:
            return self.config.ahead(self.k)
        link = self.link.snapshot(self.config.k_max)
        fits = math.floor((link.rtt_ms + link.verify_ms[self.k]) / link.draft_ms_per_token)
        return max(0, min(fits, self.config.k_max + 1, MAX_DRAFT_TOKENS + 1))
