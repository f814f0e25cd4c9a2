"""LocalVerifier: the target side of one session in this process — prefill once, then one forward
pass per proposal, the acceptance rule, KV rollback to the committed length. The target gRPC
servicer wraps it; tests and single-process mode call it directly. Knows nothing about gRPC.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from concurrent.futures import Executor

import torch

from edgespec.core.acceptance import get_rule
from edgespec.core.sampling import make_generator
from edgespec.core.types import MAX_DRAFT_TOKENS, Proposal, SessionSpec, SessionStateError, Verdict
from edgespec.models.kv_sequence import KVSequence

TARGET_STREAM = 1  # random stream id of the target within a session seed


class LocalVerifier:
    """One verification session over a loaded target model (runs compute on `executor`)."""

    def __init__(self, model: torch.nn.Module, vocab_size: int, spec: SessionSpec,
                 executor: Executor | None = None) -> None:
        self.rule = get_rule(spec.acceptance)
        self.rule.check(spec.params)
        self.vocab_size = vocab_size
        self.params = spec.params
        self.hidden_size = spec.draft_hidden_size if spec.send_hidden_states else None
        self.executor = executor
        self.seq = KVSequence(model, list(spec.prompt_ids))
        self.generator = make_generator(spec.params.seed, TARGET_STREAM)
        self.round = 0
        self.awaiting_correction = False

    async def prefill(self) -> float:
        """Feed the prompt minus its last token (which leads the first block); return ms."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._prefill)

    async def verify(self, proposal: Proposal) -> Verdict:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._verify, proposal)

    async def autoregress(self, proposal: Proposal, n: int) -> AsyncIterator[Verdict]:
        """Server-only mode: verify the empty `proposal`, then n - 1 more target-only tokens."""
        if proposal.k or n < 1:
            raise ValueError("server_tokens: a server-only block drafts nothing and asks for >= 1 token")
        loop = asyncio.get_running_loop()
        yield await loop.run_in_executor(self.executor, self._verify, proposal)
        for _ in range(n - 1):
            yield await loop.run_in_executor(self.executor, self._verify, Proposal(round=self.round, tokens=()))

    async def close(self) -> None:
        self.seq.cache = None  # free the KV cache now, not at garbage collection

    @property
    def forward_passes(self) -> int:
        return self.seq.forward_passes

    def _prefill(self) -> float:
        start = time.perf_counter()
        if len(self.seq.tokens) > 1:
            with torch.inference_mode():
                self.seq.feed(self.seq.tokens[:-1])
        return (time.perf_counter() - start) * 1e3

    def _verify(self, proposal: Proposal) -> Verdict:
        start = time.perf_counter()
        self._admit(proposal)
        drafts = list(proposal.tokens)
        k = len(drafts)
        with torch.inference_mode():
            out = self.seq.feed(self.seq.pending() + drafts)
            outcome = self.rule.verify(drafts, proposal.q_probs, out.logits[-(k + 1):],
                                       self.params, self.generator)
        self.seq.rollback(len(self.seq.tokens) + outcome.accepted)
        bonus_or_correction = [] if outcome.token is None else [outcome.token]
        self.seq.commit(drafts[: outcome.accepted] + bonus_or_correction)
        self.awaiting_correction = outcome.token is None
        self.round += 1
        return Verdict(round=proposal.round, accepted=outcome.accepted, token=outcome.token,
                       residual_p=outcome.residual_p, verify_ms=(time.perf_counter() - start) * 1e3,
                       target_forward_passes=self.seq.forward_passes)

    def _admit(self, proposal: Proposal) -> None:
        """Check the proposal against the session state; apply a deferred correction."""
        if proposal.round != self.round:
            raise SessionStateError(f"round: expected {self.round}, got {proposal.round}")
        if proposal.k > MAX_DRAFT_TOKENS:
            raise ValueError(f"token_ids: at most {MAX_DRAFT_TOKENS} draft tokens, got {proposal.k}")
        named = [("token_ids", t) for t in proposal.tokens] + [("correction", proposal.correction)] * (
            proposal.correction is not None)
        for field, token in named:
            if not 0 <= token < self.vocab_size:
                raise ValueError(f"{field}: {token} is outside the vocabulary [0, {self.vocab_size})")
        if not self.params.greedy and len(proposal.q_probs) != proposal.k:
            raise ValueError(f"q_probs: expected {proposal.k} values, got {len(proposal.q_probs)}")
        if any(not 0.0 < q <= 1.0 for q in proposal.q_probs):
            raise ValueError("q_probs: every q(x) must be in (0, 1]")
        if self.awaiting_correction != (proposal.correction is not None):
            want = "requires" if self.awaiting_correction else "must not carry"
            raise SessionStateError(f"correction: round {self.round} {want} a correction token")
        if proposal.correction is not None:
            self.seq.commit([proposal.correction])
