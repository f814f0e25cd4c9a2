"""LocalDrafter: the draft side of one session in this process — propose a block (greedy or
sampled with the session's params) with q(x), entropies and optional hidden states, ending early
on the plan's entropy stop; optionally keep drafting while the verdict is in flight (proactive
drafting); then commit the verdict: roll the KV cache back and, for a deferred rejection, sample
the correction from the residual. The draft gRPC servicer and the embedded orchestrator use it;
it knows nothing about gRPC.

Proactive drafting keeps sampling past the block as if it will be fully accepted: first a guess
of the bonus token, then the next block. The pre-drafted tokens are used only when the verdict
accepts the whole block and its bonus equals the guess — an event that does not depend on them —
so they are exactly draws from q given the committed prefix and the output law is unchanged.
(At temperature > 0 the draft's random stream then depends on timing: outputs keep their
distribution but are not seed-reproducible.)
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from dataclasses import dataclass

import torch

from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.sampling import entropy, make_generator, probs_from_logits, sample
from edgespec.core.types import (
    MAX_DRAFT_TOKENS, Committed, DraftPlan, EntropyStop, Proposal, SessionSpec, SessionStateError, TopQ, Verdict)
from edgespec.models.draft_runtime import LoadedDraft

DRAFT_STREAM = 2  # random stream id of the draft within a session seed


@dataclass(frozen=True)
class Drafted:
    """One sampled draft token and what it was sampled from."""

    token: int
    q: torch.Tensor          # [V] the distribution it was drawn from (q_i)
    entropy: float           # H of the temperature-1 softmax, nats
    hidden: torch.Tensor | None
    top: tuple[torch.Tensor, torch.Tensor] | None = None  # ([n] ids, [n] probs) when asked


class LocalDrafter:
    """One drafting session over a loaded draft model (runs compute on `executor`).

    Invariant: `tail` holds tokens sampled beyond the committed sequence; the KV cache covers
    the committed tokens (maybe minus pending ones) plus every tail token but the last.
    """

    def __init__(self, draft: LoadedDraft, resolved: ResolvedSpec, executor: Executor | None = None) -> None:
        spec = resolved.spec
        draft.check(spec)
        self.rule = resolved.rule
        self.params = spec.params
        self.executor = executor
        self.send_hidden_states = spec.send_hidden_states
        # top-n q for DropMatch's JS criterion (the temperature-1 softmax when drafting greedily)
        self.top_k = spec.acceptance_params.draft_top_k if resolved.needs.top_q else 0
        self.seq = draft.open_sequence(list(spec.prompt_ids), _context_tokens(spec), spec.send_hidden_states)
        self.generator = make_generator(spec.params.seed, DRAFT_STREAM)
        self.round = 0
        self.tail: list[Drafted] = []
        self.last: Proposal | None = None
        self.correction: int | None = None       # sampled residual, sent with the next proposal
        self.ahead_task: asyncio.Task | None = None
        self.ahead_stop = False

    async def prefill(self) -> float:
        return await self._run(self._prefill)

    async def propose(self, plan: DraftPlan) -> Proposal:
        proposal = await self._run(self._propose, plan)
        if plan.ahead:
            self.ahead_stop = False
            self.ahead_task = asyncio.create_task(self._draft_ahead(proposal.k + plan.ahead))
        return proposal

    async def commit(self, verdict: Verdict) -> Committed:
        await self._stop_ahead()
        return await self._run(self._commit, verdict)

    async def close(self) -> None:
        await self._stop_ahead()
        await self._run(self.seq.close)

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _draft_ahead(self, until: int) -> None:
        """One executor job per token, so a verdict waits for at most one draft forward."""
        while not self.ahead_stop and len(self.tail) < until:
            await self._run(self._draft_one)

    async def _stop_ahead(self) -> None:
        if self.ahead_task is not None:
            self.ahead_stop = True
            await self.ahead_task
            self.ahead_task = None

    def _prefill(self) -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            self.seq.prefill()
        return (time.perf_counter() - start) * 1e3

    def _draft_one(self) -> Drafted:
        """Sample the token after the tail (or after the committed sequence) and append it."""
        feed = [self.tail[-1].token] if self.tail else self.seq.pending()
        with torch.inference_mode():
            out = self.seq.feed(feed, hidden=self.send_hidden_states, last_only=True)
        row = out.logits[-1]
        q = probs_from_logits(row, self.params)
        token = int(row.argmax()) if self.params.greedy else sample(q, self.generator)
        hidden = out.hidden[-1] if out.hidden is not None else None
        self.tail.append(Drafted(token, q, float(entropy(row)), hidden, self._top(row, q)))
        return self.tail[-1]

    def _top(self, row: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not self.top_k:
            return None
        dist = torch.softmax(row.float(), dim=-1) if self.params.greedy else q
        probs, ids = torch.topk(dist, min(self.top_k, dist.numel()))
        return ids, probs

    def _propose(self, plan: DraftPlan) -> Proposal:
        if self.last is not None:
            raise SessionStateError("propose: the previous proposal has not been committed")
        start, reused = time.perf_counter(), len(self.tail)
        n = _block_length(self.tail, plan.k, plan.stop, self._draft_one)
        block = self.tail[:n]
        self.last = Proposal(
            round=self.round, tokens=tuple(d.token for d in block),
            q_probs=() if self.params.greedy else tuple(float(d.q[d.token]) for d in block),
            entropies=tuple(d.entropy for d in block),
            hidden_states=torch.stack([d.hidden for d in block]).half() if self.send_hidden_states and block
            else None, top_q=_top_q(block) if self.top_k and block else None,
            correction=self.correction, draft_ms=(time.perf_counter() - start) * 1e3,
            predrafted=min(reused, n))
        self.correction = None
        return self.last

    def _commit(self, verdict: Verdict) -> Committed:
        last = self.last
        if last is None or verdict.round != last.round:
            raise SessionStateError(f"commit: verdict for round {verdict.round} does not answer a proposal")
        if not 0 <= verdict.accepted <= last.k:
            raise ValueError(f"accepted: {verdict.accepted} is outside 0..{last.k}")
        n, k = verdict.accepted, last.k
        if verdict.token is not None:
            token = verdict.token
        else:
            token = self.rule.correct(verdict.residual_p, self.tail[n].q, self.generator)
            self.correction = token
        committed = last.tokens[:n] + (token,)
        hit = n == k and verdict.token is not None and len(self.tail) > k and self.tail[k].token == token
        if hit:  # the bonus matches the guess: the tokens drafted after it stay valid
            self.tail = self.tail[k + 1:]
        else:
            self.tail = []
            self.seq.rollback(len(self.seq.tokens) + n)
        self.seq.commit(committed)
        self.last = None
        self.round += 1
        return Committed(tokens=committed)


def _context_tokens(spec: SessionSpec) -> int:
    """Positions a session's draft context may hold: prompt, budget, a block and a pre-drafted one."""
    return len(spec.prompt_ids) + spec.max_new_tokens + 2 * MAX_DRAFT_TOKENS + 2


def _top_q(block: list[Drafted]) -> TopQ:
    return TopQ(indices=torch.stack([d.top[0] for d in block]), probs=torch.stack([d.top[1] for d in block]).float())


def _block_length(tail: list[Drafted], k: int, stop: EntropyStop | None, draft_one) -> int:
    """How many tokens the block takes from `tail`, drafting more with `draft_one` as needed.
    The stop looks only at H(q_i), never at the sampled token, so stopping stays lossless."""
    for i in range(k):
        entry = tail[i] if i < len(tail) else draft_one()
        end = stop.block_end(i, entry.entropy) if stop is not None else None
        if end is not None:
            return end
    return k
