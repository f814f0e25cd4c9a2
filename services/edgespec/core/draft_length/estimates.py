"""Online estimates the latency-aware policy plans with: EWMAs, a windowed least-squares line,
the network time of a link (`NetworkMeter`: the one estimator of RTT and uplink ms/byte, shared
with the channel meter of the channel-aware rules), the per-link costs (`LinkEstimates`: network,
draft ms/token, verify ms vs k under the target's load) and the per-request per-position
acceptance curve. Pure arithmetic over StepResults; no clocks, no I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from edgespec.core.types import MAX_DRAFT_TOKENS, StepResult


class Ewma:
    """Exponentially weighted mean; the first sample initialises it."""

    def __init__(self, weight: float, value: float | None = None) -> None:
        self.weight, self.value = weight, value

    def add(self, x: float) -> float:
        self.value = x if self.value is None else (1 - self.weight) * self.value + self.weight * x
        return self.value


class LinearFit:
    """y ~ a + b x by least squares over the last `window` points. While x has not varied enough
    to identify b, b = `prior_slope_ratio` x a (so one observed x still predicts others)."""

    def __init__(self, window: int = 64, prior_slope_ratio: float = 0.1, min_spread: float = 0.5) -> None:
        self.points: deque[tuple[float, float]] = deque(maxlen=window)
        self.prior_slope_ratio, self.min_spread = prior_slope_ratio, min_spread

    def add(self, x: float, y: float) -> None:
        self.points.append((x, y))

    @property
    def ready(self) -> bool:
        return bool(self.points)

    def coefficients(self) -> tuple[float, float]:
        """(a, b); b >= 0; (0, 0) before any point."""
        n = len(self.points)
        if not n:
            return 0.0, 0.0
        mx = sum(x for x, _ in self.points) / n
        my = sum(y for _, y in self.points) / n
        sxx = sum((x - mx) ** 2 for x, _ in self.points)
        if sxx / n >= self.min_spread ** 2:
            b = max(0.0, sum((x - mx) * (y - my) for x, y in self.points) / sxx)
            return my - b * mx, b
        a = my / (1 + self.prior_slope_ratio * mx)
        return a, self.prior_slope_ratio * a

    def predict(self, x: float) -> float:
        a, b = self.coefficients()
        return max(0.0, a + b * x)


class NetworkMeter:
    """Network time of rounds — `StepResult.network_ms`: round trip minus the target's queue and
    compute, the same definition telemetry exports as `net.rtt_ms` — split into a base RTT (EWMA)
    and uplink ms per byte (least squares against bytes up; 0 until bytes vary)."""

    def __init__(self, weight: float) -> None:
        self.rtt = Ewma(weight)
        self.net = LinearFit(prior_slope_ratio=0.0, min_spread=64.0)  # net ms ~ a + bytes / bw

    @property
    def ms_per_byte(self) -> float:
        return self.net.coefficients()[1]

    def observe(self, step: StepResult) -> None:
        """Learn from a speculative round (server-only steps carry no round trip of their own)."""
        if step.server:
            return
        self.net.add(step.bytes_up, step.network_ms)
        self.rtt.add(max(0.0, step.network_ms - step.bytes_up * self.ms_per_byte))


@dataclass(frozen=True)
class LinkSnapshot:
    """Point estimates for the cost model (milliseconds, bytes)."""

    rtt_ms: float
    ms_per_byte: float
    draft_ms_per_token: float
    verify_ms: tuple[float, ...]   # verify_ms[k] for k = 0..k_max (k drafts + the bonus position)
    bytes_up_per_token: float
    bytes_up_base: float


class LinkEstimates:
    """What a round costs on this draft->target link. Shared by the requests of one orchestrator
    (same link, same models); every request's policy keeps its own acceptance curve, started
    from the long-run curve kept here."""

    def __init__(self, weight: float = 0.2) -> None:
        self.network = NetworkMeter(weight)
        self.draft_ms = Ewma(weight)
        self.verify = LinearFit(prior_slope_ratio=0.1)   # the target's answer time vs k: queue + compute
        self.bytes_per_token = Ewma(weight)
        self.bytes_base = Ewma(weight)
        self.acceptance = AcceptanceCurve(MAX_DRAFT_TOKENS, weight=0.05)  # long-run prior per request

    @property
    def rtt(self) -> Ewma:
        return self.network.rtt

    @property
    def ready(self) -> bool:
        return self.rtt.value is not None and self.draft_ms.value is not None and self.verify.ready

    def observe(self, step: StepResult) -> None:
        # t_v under load: a batching target answers after its current step (queue) and the batched
        # step it runs the block in (compute), so a busy server shows up as a dearer round
        self.verify.add(0 if step.server else step.drafted, step.verify_ms + step.queue_ms)
        self.network.observe(step)
        if step.server:  # the target verified nothing; `drafted` is the draft's shadow token
            if step.drafted:
                self.draft_ms.add(step.draft_ms / step.drafted)
            return
        self.acceptance.observe(step.drafted, step.accepted)
        if step.drafted:
            self.draft_ms.add(step.draft_ms / step.drafted)
            self.bytes_per_token.add(step.bytes_up / (step.drafted + 1))
        self.bytes_base.add(step.bytes_up - (self.bytes_per_token.value or 0.0) * step.drafted)

    def snapshot(self, k_max: int) -> LinkSnapshot:
        return LinkSnapshot(
            rtt_ms=self.rtt.value or 0.0, ms_per_byte=self.network.ms_per_byte,
            draft_ms_per_token=self.draft_ms.value or 0.0,
            verify_ms=tuple(self.verify.predict(k) for k in range(k_max + 1)),
            bytes_up_per_token=self.bytes_per_token.value or 0.0,
            bytes_up_base=max(0.0, self.bytes_base.value or 0.0))


class AcceptanceCurve:
    """alpha_i = P(draft position i accepted | positions < i accepted), an EWMA per position that
    starts as a running mean in which the prior counts as one observation (a 97% draft is not
    judged by a 0.6 prior for a dozen rounds). Positions never tested borrow the nearest tested
    one (acceptance is not i.i.d.)."""

    def __init__(self, k_max: int, prior: float | tuple[float, ...] = 0.6, weight: float = 0.2) -> None:
        self.alpha: list[float] = list(prior[:k_max]) if isinstance(prior, tuple) else [prior] * k_max
        self.seen = [isinstance(prior, tuple)] * k_max
        self.count = [0] * k_max
        self.weight = weight

    def observe(self, drafted: int, accepted: int) -> None:
        for i in range(min(drafted, len(self.alpha))):
            if i > accepted:
                break
            self._add(i, 1.0 if i < accepted else 0.0)

    def observe_iid(self, accepted: bool) -> None:
        """Evidence from a single draft position (a shadow draft) moves every position alike —
        the i.i.d. acceptance model of Leviathan et al., for lack of anything deeper."""
        for i in range(len(self.alpha)):
            self._add(i, float(accepted))

    def _add(self, i: int, x: float) -> None:
        self.count[i] += 1
        weight = max(self.weight, 1.0 / (self.count[i] + 1))
        self.alpha[i] = (1 - weight) * self.alpha[i] + weight * x
        self.seen[i] = True

    def values(self) -> tuple[float, ...]:
        out, last = [], None
        for a, seen in zip(self.alpha, self.seen):
            last = a if seen else (last if last is not None else a)
            out.append(last)
        return tuple(out)
