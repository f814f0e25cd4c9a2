"""Value types at the seams of the loop (frozen dataclasses) and the Drafter/Verifier protocols.

Local (torch, in-process) and Remote (gRPC) drafters and verifiers implement the same protocols,
so the loop cannot tell them apart. Nothing here knows about models, tokenizers or the wire.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

import torch

from edgespec.core.acceptance_params import AcceptanceParams

MAX_DRAFT_TOKENS = 32


class SessionStateError(Exception):
    """A well-formed message that is not valid in the session's current state (round order...)."""


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings applied identically to q and p. temperature 0 means greedy."""

    temperature: float = 0.0
    top_k: int = 0          # 0 disables top-k
    top_p: float = 1.0      # nucleus mass in (0, 1]; 1 disables top-p
    seed: int = 0

    def __post_init__(self) -> None:
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not (0.0 < self.top_p <= 1.0):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def check_prompt_length(n_tokens: int, max_prompt_tokens: int) -> None:
    """Raise ValueError when a prompt of `n_tokens` is over the limit (callers check the count
    before converting a wire message's ids)."""
    if n_tokens > max_prompt_tokens:
        raise ValueError(f"prompt_token_ids: {n_tokens} tokens exceed the limit of {max_prompt_tokens}")


@dataclass(frozen=True)
class SessionSpec:
    """What opens a session on the draft and the target alike."""

    prompt_ids: tuple[int, ...]
    params: SamplingParams
    acceptance: str
    max_new_tokens: int
    send_hidden_states: bool = False
    draft_hidden_size: int = 0
    acceptance_params: AcceptanceParams = AcceptanceParams()

    def check(self, vocab_size: int, max_prompt_tokens: int, max_new_tokens: int) -> None:
        """Raise ValueError naming the field that a server with these limits cannot accept."""
        if not self.prompt_ids:
            raise ValueError("prompt_token_ids: the prompt is empty")
        check_prompt_length(len(self.prompt_ids), max_prompt_tokens)
        bad = next((t for t in self.prompt_ids if not 0 <= t < vocab_size), None)
        if bad is not None:
            raise ValueError(f"prompt_token_ids: {bad} is outside the vocabulary [0, {vocab_size})")
        if not 1 <= self.max_new_tokens <= max_new_tokens:
            raise ValueError(f"max_new_tokens: must be in 1..{max_new_tokens}, got {self.max_new_tokens}")
        if self.send_hidden_states and self.draft_hidden_size <= 0:
            raise ValueError("draft_hidden_size: required when send_hidden_states is set")


@dataclass(frozen=True)
class Distribution:
    """A probability vector over a vocabulary of `vocab_size`, sparse where that is exact."""

    vocab_size: int
    probs: torch.Tensor                  # [n] float32 (n == vocab_size when dense)
    indices: torch.Tensor | None = None  # [n] int64 token ids; None means dense

    def dense(self) -> torch.Tensor:
        """The full [vocab_size] float32 vector."""
        if self.indices is None:
            return self.probs.to(torch.float32)
        out = torch.zeros(self.vocab_size, dtype=torch.float32)
        out[self.indices] = self.probs.to(torch.float32)
        return out

    @classmethod
    def compact(cls, probs: torch.Tensor) -> Distribution:
        """Store `probs` [V] sparsely when fewer than half its entries are non-zero."""
        nonzero = torch.nonzero(probs > 0).flatten()
        if nonzero.numel() * 2 < probs.numel():
            return cls(probs.numel(), probs[nonzero].to(torch.float32), nonzero)
        return cls(probs.numel(), probs.to(torch.float32))


@dataclass(frozen=True)
class EntropyStop:
    """Ends a draft early on the draft's own entropy H(q_i) (temperature-1 softmax, nats).

    `keep_trigger` False (AdaEDL): checked before sampling token i (i >= 2), which is then not
    drafted. True (SVIP): checked after sampling token i, which stays in the draft. Either way
    the decision never depends on the sampled token's own probability, so it is lossless.
    """

    max_entropy: float
    keep_trigger: bool = False

    def __post_init__(self) -> None:
        if not self.max_entropy >= 0:
            raise ValueError(f"stop_entropy: must be >= 0 nats, got {self.max_entropy}")

    def block_end(self, i: int, entropy: float) -> int | None:
        """The block's length if it ends at 0-based token i of entropy H(q_i), else None."""
        if entropy <= self.max_entropy:
            return None
        if self.keep_trigger:
            return i + 1
        return i if i > 0 else None  # at least one token per round


@dataclass(frozen=True)
class DraftPlan:
    """What a draft-length policy asks of the next round.

    k: most tokens to draft; stop: an optional entropy early stop; ahead: tokens to pre-draft
    while the verdict is in flight (proactive drafting: the bonus guess, then the next block);
    server_tokens > 0: no draft this round — the target generates that many tokens itself and
    streams them back (server-only mode).
    """

    k: int
    stop: EntropyStop | None = None
    ahead: int = 0
    server_tokens: int = 0
    trace_context: Mapping[str, str] = field(default_factory=dict, compare=False)  # W3C, of the round

    def __post_init__(self) -> None:
        if not 0 <= self.k <= MAX_DRAFT_TOKENS:
            raise ValueError(f"k: must be in 0..{MAX_DRAFT_TOKENS}, got {self.k}")
        if not 0 <= self.ahead <= MAX_DRAFT_TOKENS + 1:
            raise ValueError(f"ahead: must be in 0..{MAX_DRAFT_TOKENS + 1}, got {self.ahead}")
        if self.server_tokens < 0 or (self.server_tokens and self.k):
            raise ValueError("server_tokens: must be >= 0, and a server round drafts nothing (k = 0)")


@dataclass(frozen=True)
class TopQ:
    """The draft's top-n probabilities per drafted token; the remaining mass of each row is one
    tail bucket (1 - probs.sum()). An approximation of q that DropMatch's JS criterion uses."""

    indices: torch.Tensor                  # [k, n] int64 token ids
    probs: torch.Tensor                    # [k, n] float32, each row sums to <= 1


@dataclass(frozen=True)
class Channel:
    """The draft->target link as the orchestrator measured it before a round."""

    rtt_ms: float = 0.0                    # round trip minus target compute
    uplink_bps: float = 0.0                # uplink bandwidth, bits/s; 0 = unknown (free)


@dataclass(frozen=True)
class Proposal:
    """One round's draft block: x_1..x_k with q_i(x_i), entropies and optional hidden states."""

    round: int
    tokens: tuple[int, ...]                 # [k] draft token ids
    q_probs: tuple[float, ...] = ()         # [k] q_i(x_i); empty for a greedy (one-hot) draft
    entropies: tuple[float, ...] = ()       # [k] nats, temperature-1 softmax of the draft
    hidden_states: torch.Tensor | None = None  # [k, d] float16, only when the session asks
    top_q: TopQ | None = None               # top-n q per token, only when the session's rule asks
    channel: Channel | None = None          # the link as measured before this round
    correction: int | None = None           # residual sample resolving the previous verdict
    draft_ms: float = 0.0
    predrafted: int = 0                     # leading tokens drafted proactively last round
    trace_context: Mapping[str, str] = field(default_factory=dict, compare=False)  # W3C, of the round

    @property
    def k(self) -> int:
        return len(self.tokens)

    def check(self, hidden_size: int | None) -> None:
        """Raise ValueError naming the field unless the block is well formed: at most
        MAX_DRAFT_TOKENS tokens, q_probs and entropies empty or one per token, and, when the
        session expects hidden states inside blocks (`hidden_size` d), float16 [k, d] ones."""
        if self.k > MAX_DRAFT_TOKENS:
            raise ValueError(f"token_ids: at most {MAX_DRAFT_TOKENS} draft tokens, got {self.k}")
        for name in ("q_probs", "entropies"):
            values = getattr(self, name)
            if values and len(values) != self.k:
                raise ValueError(f"{name}: expected {self.k} values, got {len(values)}")
        if hidden_size is None or not self.k:
            return
        hidden = self.hidden_states
        if hidden is None:
            raise ValueError("hidden_states: required by the session (send_hidden_states)")
        if tuple(hidden.shape) != (self.k, hidden_size) or hidden.dtype != torch.float16:
            raise ValueError(f"hidden_states: expected float16 [{self.k}, {hidden_size}], "
                             f"got {str(hidden.dtype).removeprefix('torch.')} {list(hidden.shape)}")


@dataclass(frozen=True)
class Verdict:
    """The target's answer to one Proposal. Exactly one of `token` / `residual_p` is set."""

    round: int
    accepted: int                           # leading draft tokens kept, 0..k
    token: int | None = None                # bonus (accepted == k) or target-chosen correction
    residual_p: Distribution | None = None  # p_j at the first rejection, for draft-side sampling
    verify_ms: float = 0.0                  # target compute for this round
    target_forward_passes: int = 0          # session total after this round (1 + rounds)
    bytes_up: int = 0                       # wire bytes of the proposal (0 in-process)
    bytes_down: int = 0                     # wire bytes of the verdict (0 in-process)
    relaxed_accepted: int = 0               # accepted beyond what exact matching would accept
    queue_ms: float = 0.0                   # wait on the target before compute (its model was busy)

    def __post_init__(self) -> None:
        if (self.token is None) == (self.residual_p is None):
            raise ValueError("a verdict carries exactly one of token and residual_p")


@dataclass(frozen=True)
class StepResult:
    """What one round committed, with its measurements. `tokens` are already stop-truncated."""

    tokens: tuple[int, ...]
    drafted: int
    accepted: int
    draft_ms: float
    verify_ms: float
    round_trip_ms: float
    round_ms: float
    bytes_up: int
    bytes_down: int
    target_forward_passes: int
    finish_reason: str | None = None        # "stop" | "length" on the last step
    server: bool = False                    # generated by the target alone (server-only mode)
    predrafted: int = 0                     # draft tokens reused from proactive drafting
    relaxed_accepted: int = 0               # accepted beyond exact match (lossy rules)
    queue_ms: float = 0.0                   # target-side wait before compute

    @property
    def network_ms(self) -> float:
        """The round trip minus the target's wait and compute: time on the wire (net.rtt_ms)."""
        return max(0.0, self.round_trip_ms - self.verify_ms - self.queue_ms)


@dataclass(frozen=True)
class Committed:
    """Tokens a verdict committed: the accepted drafts then the bonus or correction."""

    tokens: tuple[int, ...]


class Drafter(Protocol):
    """Proposes draft blocks for one session and keeps its KV cache in step with the verdicts."""

    async def propose(self, plan: DraftPlan) -> Proposal: ...

    async def commit(self, verdict: Verdict) -> Committed: ...

    async def close(self) -> None: ...


class Verifier(Protocol):
    """Verifies draft blocks for one session with one target forward pass each."""

    async def verify(self, proposal: Proposal) -> Verdict: ...

    def autoregress(self, proposal: Proposal, n: int) -> AsyncIterator[Verdict]:
        """Verify the empty `proposal`, then generate n - 1 more tokens target-only; one verdict
        per token (rounds proposal.round .. proposal.round + n - 1) as each is produced."""

    async def close(self) -> None: ...
