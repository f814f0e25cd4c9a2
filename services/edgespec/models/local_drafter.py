"""LocalDrafter: the draft side of one session in this process — propose k tokens (greedy or
sampled with the session's params) with q(x), entropies and optional hidden states, then commit a
verdict: roll the KV cache back and, for a deferred rejection, sample the correction from the
residual. The draft gRPC servicer and the embedded orchestrator use it; knows nothing about gRPC.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor

import torch

from edgespec.core.acceptance import get_rule
from edgespec.core.sampling import entropy, make_generator, probs_from_logits, sample
from edgespec.core.types import Committed, Proposal, SessionSpec, SessionStateError, Verdict
from edgespec.models.kv_sequence import KVSequence

DRAFT_STREAM = 2  # random stream id of the draft within a session seed


class LocalDrafter:
    """One drafting session over a loaded draft model (runs compute on `executor`)."""

    def __init__(self, model: torch.nn.Module, spec: SessionSpec, executor: Executor | None = None) -> None:
        self.rule = get_rule(spec.acceptance)
        self.rule.check(spec.params)
        self.params = spec.params
        self.executor = executor
        self.send_hidden_states = spec.send_hidden_states
        self.seq = KVSequence(model, list(spec.prompt_ids))
        self.generator = make_generator(spec.params.seed, DRAFT_STREAM)
        self.round = 0
        self.last: Proposal | None = None
        self.q_rows: list[torch.Tensor] = []     # [V] q_i for each token of the last proposal
        self.correction: int | None = None       # sampled residual, sent with the next proposal

    async def prefill(self) -> float:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._prefill)

    async def propose(self, k: int) -> Proposal:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._propose, k)

    async def commit(self, verdict: Verdict) -> Committed:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._commit, verdict)

    async def close(self) -> None:
        self.seq.cache = None

    def _prefill(self) -> float:
        start = time.perf_counter()
        if len(self.seq.tokens) > 1:
            with torch.inference_mode():
                self.seq.feed(self.seq.tokens[:-1])
        return (time.perf_counter() - start) * 1e3

    def _propose(self, k: int) -> Proposal:
        if self.last is not None:
            raise SessionStateError("propose: the previous proposal has not been committed")
        start = time.perf_counter()
        tokens, q_probs, entropies, hidden, self.q_rows = [], [], [], [], []
        with torch.inference_mode():
            feed = self.seq.pending()
            for _ in range(k):
                out = self.seq.feed(feed, hidden=self.send_hidden_states)
                row = out.logits[-1]
                q = probs_from_logits(row, self.params)
                token = int(row.argmax()) if self.params.greedy else sample(q, self.generator)
                tokens.append(token)
                q_probs.append(float(q[token]))
                entropies.append(float(entropy(row)))
                self.q_rows.append(q)
                if out.hidden is not None:
                    hidden.append(out.hidden[-1])
                feed = [token]
        self.last = Proposal(
            round=self.round, tokens=tuple(tokens),
            q_probs=() if self.params.greedy else tuple(q_probs), entropies=tuple(entropies),
            hidden_states=torch.stack(hidden).half() if hidden else None,
            correction=self.correction, draft_ms=(time.perf_counter() - start) * 1e3)
        self.correction = None
        return self.last

    def _commit(self, verdict: Verdict) -> Committed:
        last = self.last
        if last is None or verdict.round != last.round:
            raise SessionStateError(f"commit: verdict for round {verdict.round} does not answer a proposal")
        if not 0 <= verdict.accepted <= last.k:
            raise ValueError(f"accepted: {verdict.accepted} is outside 0..{last.k}")
        n = verdict.accepted
        if verdict.token is not None:
            token = verdict.token
        else:
            token = self.rule.correct(verdict.residual_p, self.q_rows[n], self.generator)
            self.correction = token
        committed = last.tokens[:n] + (token,)
        self.seq.rollback(len(self.seq.tokens) + n)
        self.seq.commit(committed)
        self.last, self.q_rows = None, []
        self.round += 1
        return Committed(tokens=committed)
