"""Frozen settings of `edgespec sim` (one run) and `edgespec sim sweep` (a grid), built from the CLI
flags 1:1, plus `LinkShape`, the device <-> edge link asked for. Values and validation only;
nothing here touches the network or starts a process."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# (rtt, rate, loss, fixed ks, policies, prompts, new tokens) of `sim sweep --quick`.
QUICK_GRID = {"rtts": (0.0, 50.0), "rates": (0.0,), "losses": (0.0,), "ks": (3,),
              "policies": ("fixed", "server"), "num_prompts": 1, "max_new_tokens": 16, "k_scan": ()}


def _check_number(name: str, value: float, upper: float = math.inf) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0 or value >= upper:
        raise ValueError(f"{name} must be in [0, {upper:g}), got {value}")


@dataclass(frozen=True)
class LinkShape:
    """The link between device and edge: round-trip time and jitter (ms), loss per direction (%)
    and rate per direction (Mbit/s, 0 = unlimited)."""

    rtt_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    rate_mbit: float = 0.0

    def __post_init__(self) -> None:
        _check_number("rtt", self.rtt_ms)
        _check_number("jitter", self.jitter_ms)
        _check_number("loss", self.loss_pct, upper=100.0)
        _check_number("rate", self.rate_mbit)

    def describe(self) -> str:
        rate = f"{self.rate_mbit:g} Mbit/s" if self.rate_mbit else "unlimited"
        return (f"rtt {self.rtt_ms:g} ms, jitter {self.jitter_ms:g} ms, loss {self.loss_pct:g}% "
                f"per direction, rate {rate}")


@dataclass(frozen=True)
class Workload:
    """What the device asks for: prompts and the generation options of every request."""

    model: str = "smollm2"                 # preset of both roles (smollm2, tiny, ...)
    prompts: str | None = None             # JSONL prompt file; None: the bundled bench set
    num_prompts: int = 3                   # first N prompts of the file
    max_new_tokens: int = 48
    temperature: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_prompts < 1 or self.max_new_tokens < 1:
            raise ValueError("num_prompts and max_new_tokens must be >= 1")
        _check_number("temperature", self.temperature)


@dataclass(frozen=True)
class Runtime:
    """How the processes run: threads each, mechanism choice, deadlines, where results go."""

    threads: int = 1                       # torch threads of the target and of the draft
    mechanism: str = "auto"                # auto (netem if the kernel has it), netem, userspace
    ready_timeout_s: float = 600.0         # a server must serve within this
    deadline_s: float = 1800.0             # the whole workload of one draft must end within this
    out: str | None = None                 # folder for results; None: print only


@dataclass(frozen=True)
class SimConfig:
    """`edgespec sim`: one link, one request policy."""

    link: LinkShape = field(default_factory=LinkShape)
    workload: Workload = field(default_factory=Workload)
    runtime: Runtime = field(default_factory=Runtime)
    policy: str | None = None              # draft-length policy; None: the draft's default (auto)
    k: int | None = None
    k_max: int | None = None
    proactive: bool = False
    acceptance: str | None = None          # exact | rejection; None: by temperature

    def request_options(self) -> dict:
        """Generation options of every request (SDK keyword arguments)."""
        w = self.workload
        return {"max_new_tokens": w.max_new_tokens, "temperature": w.temperature, "seed": w.seed,
                "acceptance": self.acceptance, "draft_length": self.policy, "k": self.k,
                "k_max": self.k_max, "proactive": self.proactive}


@dataclass(frozen=True)
class SweepConfig:
    """`edgespec sim sweep`: RTT x rate x loss x policy x acceptance rule, plus local baselines."""

    rtts: tuple[float, ...] = (0.0, 25.0, 100.0)
    rates: tuple[float, ...] = (0.0, 10.0)
    losses: tuple[float, ...] = (0.0, 1.0)
    jitter_ms: float = 0.0
    policies: tuple[str, ...] = ("fixed", "auto", "server")
    ks: tuple[int, ...] = (3,)             # draft lengths of the `fixed` policy
    k_max: int = 8
    k_scan: tuple[int, ...] = (1, 2, 4, 6)  # extra fixed ks in the first cell only (tau vs k)
    acceptance: tuple[str, ...] = ("exact",)
    rejection_temperature: float = 0.7     # temperature of the `rejection` rows
    baselines: bool = True
    workload: Workload = field(default_factory=Workload)
    runtime: Runtime = field(default_factory=lambda: Runtime(out="bench-results/sim"))

    def __post_init__(self) -> None:
        for rtt in self.rtts:
            LinkShape(rtt_ms=rtt)
        for rate in self.rates:
            LinkShape(rate_mbit=rate)
        for loss in self.losses:
            LinkShape(loss_pct=loss)
        if not (self.rtts and self.rates and self.losses and self.policies and self.acceptance):
            raise ValueError("every sweep axis needs at least one value")

    def cells(self) -> list[tuple[float, float]]:
        """(rate, loss) pairs: each gets one pair of namespaces and one target process."""
        return [(rate, loss) for rate in self.rates for loss in self.losses]
