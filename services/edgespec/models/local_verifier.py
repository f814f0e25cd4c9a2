"""LocalVerifier: the target side of one session — prefill once, then one forward pass per
proposal, the acceptance rule, KV rollback to the committed length, the session's token budget.
The forwards run in a `BatchEngine` (batched with other sessions' work in a server; a private
engine in single-process mode); the rule, its generator and the round state stay here. The target
gRPC servicer wraps it; tests and single-process mode call it directly. Knows nothing about gRPC.

A round is `begin` (admit + the forward pass) then `finish` (the rule, rollback, commit). Between
the two, a `mismatch-first` semantic session lacks the draft's hidden states: `PendingBlock.missing`
names the positions that failed exact match, whose rows the caller fetches (a second message on
the same stream) and hands to `finish`. Rules that read the target's hidden states or LM head get
them here, through `RuleInputs`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass, replace

import torch

from edgespec.core.acceptance import Needs, RuleInputs
from edgespec.core.acceptance.semantic_score import SemanticHead
from edgespec.core.hidden_upload import filled_block, missing_positions, uploads_on_request
from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.sampling import make_generator
from edgespec.core.types import Proposal, SessionSpec, SessionStateError, Verdict
from edgespec.models.batch_engine import BatchEngine, EngineConfig
from edgespec.models.kv_pool import Slot

TARGET_STREAM = 1  # random stream id of the target within a session seed


@dataclass(frozen=True)
class PendingBlock:
    """A block after the target's forward pass, before the rule has decided."""

    proposal: Proposal
    logits: torch.Tensor                 # [k+1, V] at x_1..x_k and the bonus slot
    hidden: torch.Tensor | None          # [k+1, d] post-norm, when the rule reads it
    start: float                         # perf_counter when the forward pass started
    missing: tuple[int, ...] = ()        # positions whose draft hidden state is still needed
    queue_ms: float = 0.0                # wait for the model thread before the forward pass
    compute_ms: float = 0.0              # the forward pass (a mismatch-first upload wait is not compute)

    def with_hidden(self, rows: torch.Tensor, d: int) -> PendingBlock:
        """Fill the `missing` positions with `rows` [m, d]; other rows stay 0 (exact matches)."""
        full = filled_block(rows, self.missing, self.proposal.k, d)
        return replace(self, proposal=replace(self.proposal, hidden_states=full), missing=())


def check_rule_inputs(spec: SessionSpec, needs: Needs, target_hidden_size: int,
                      head: SemanticHead | None) -> None:
    """Refuse at session start what the rule cannot run with (ValueError names the field)."""
    if not needs.draft_hidden:
        return
    if not spec.send_hidden_states:
        raise ValueError(f"send_hidden_states: acceptance {spec.acceptance!r} needs the draft's hidden states")
    projection = None if head is None else head.projection
    if projection is None and spec.draft_hidden_size != target_hidden_size:
        raise ValueError(f"draft_hidden_size: {spec.draft_hidden_size} differs from the target's "
                         f"{target_hidden_size}; acceptance {spec.acceptance!r} needs a calibrated "
                         "projection (a semantic head file with one: `edgespec target --semantic-head FILE`)")
    if projection is not None and tuple(projection.shape) != (target_hidden_size, spec.draft_hidden_size):
        raise ValueError(f"draft_hidden_size: the calibrated projection maps {projection.shape[1]} -> "
                         f"{projection.shape[0]}, not {spec.draft_hidden_size} -> {target_hidden_size}")


class LocalVerifier:
    """One verification session over a loaded target model. Its forwards run in `engine` (shared
    by every session of a target server; a private one-session engine when none is given), its
    rule on `executor`."""

    def __init__(self, model: torch.nn.Module, vocab_size: int, resolved: ResolvedSpec,
                 executor: Executor | None = None, head: SemanticHead | None = None,
                 engine: BatchEngine | None = None) -> None:
        spec, self.rule, self.needs = resolved.spec, resolved.rule, resolved.needs
        check_rule_inputs(spec, self.needs, int(model.config.hidden_size), head)
        self.vocab_size = vocab_size
        self.params = spec.params
        self.acceptance_params = spec.acceptance_params
        self.head = head
        self.lm_head = model.get_output_embeddings().weight.detach() if self.needs.target_hidden else None
        self.mismatch_first = uploads_on_request(self.needs, spec.acceptance_params)
        self.draft_hidden_size = spec.draft_hidden_size
        # hidden states expected inside every block (None: none, or only on request)
        self.block_hidden_size = spec.draft_hidden_size if spec.send_hidden_states and not self.mismatch_first else None
        self.pending_block = False
        self.executor = executor
        self.tokens: list[int] = list(spec.prompt_ids)
        self.prompt_len, self.max_new_tokens = len(spec.prompt_ids), spec.max_new_tokens
        self.owns_engine = engine is None
        self.engine = engine or BatchEngine(model, EngineConfig(kv_cache_tokens=self.kv_tokens, admission_wait_s=0))
        self.slot: Slot | None = None
        self.forward_passes = 0
        self.generator = make_generator(spec.params.seed, TARGET_STREAM)
        self.round = 0
        self.awaiting_correction = False

    @property
    def kv_tokens(self) -> int:
        """KV positions this session can ever hold: its prompt and every token it may commit."""
        return self.prompt_len + self.max_new_tokens + 1

    @property
    def cache_len(self) -> int:
        return self.slot.length if self.slot is not None else 0

    async def prefill(self) -> float:
        """Reserve the session's KV slot (may wait for room), then feed the prompt minus its last
        token (which leads the first block); return ms."""
        start = time.perf_counter()
        if self.slot is None:
            self.slot = await self.engine.reserve(self.kv_tokens)
        if len(self.tokens) > 1:
            await self.engine.feed(self.slot, self.tokens[self.cache_len:-1])
            self.forward_passes += 1
        return (time.perf_counter() - start) * 1e3

    async def verify(self, proposal: Proposal) -> Verdict:
        """One round in process: the proposal carries every input the rule reads."""
        return await self.finish(await self.begin(proposal))

    async def begin(self, proposal: Proposal, server_tokens: int = 0) -> PendingBlock:
        """Admit the block (and the budget of `server_tokens` verdicts it asks for, if any) and run
        the target's forward pass over it, batched with whatever other sessions have queued."""
        start = time.perf_counter()
        self._admit(proposal, server_tokens)
        drafts = list(proposal.tokens)
        k = len(drafts)
        out = await self.engine.feed(self.slot, self.tokens[self.cache_len:] + drafts, rows=k + 1,
                                     hidden=self.needs.target_hidden)
        self.forward_passes += 1
        self.pending_block = True
        missing = ()
        if self.mismatch_first and proposal.hidden_states is None and k:
            missing = missing_positions(out.logits, drafts)
            if not missing:  # all exact matches: no hidden state is read
                proposal = replace(proposal, hidden_states=filled_block(None, (), k, self.draft_hidden_size))
        return PendingBlock(proposal, out.logits, out.hidden, start, missing, queue_ms=out.queue_ms,
                            compute_ms=out.compute_ms)

    async def finish(self, pending: PendingBlock) -> Verdict:
        """Apply the rule to a block whose `missing` hidden states have been filled in."""
        if pending.missing:
            raise SessionStateError("hidden_states: the block still lacks the rows the target asked for")
        if not self.needs.target_hidden:  # exact / rejection / fly: microseconds on k + 1 rows, no thread hop
            return self._finish(pending)
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._finish, pending)

    async def autoregress(self, proposal: Proposal, n: int) -> AsyncIterator[Verdict]:
        """Server-only mode: verify the empty `proposal`, then n - 1 more target-only tokens."""
        if proposal.k or n < 1:
            raise ValueError("server_tokens: a server-only block drafts nothing and asks for >= 1 token")
        yield await self.finish(await self.begin(proposal, n))
        for _ in range(n - 1):
            yield await self.verify(Proposal(round=self.round, tokens=()))

    async def close(self) -> None:
        """Free the KV slot now (and the private engine, if this session made one)."""
        if self.slot is not None:
            self.engine.release(self.slot)
            self.slot = None
        if self.owns_engine:
            self.engine.close()

    def _finish(self, pending: PendingBlock) -> Verdict:
        start = time.perf_counter()
        proposal, drafts = pending.proposal, list(pending.proposal.tokens)
        with torch.inference_mode():
            outcome = self.rule.verify(drafts, proposal.q_probs, pending.logits, self.params,
                                       self.generator, self._inputs(pending))
        self.pending_block = False
        self.slot.rollback(len(self.tokens) + outcome.accepted)
        bonus_or_correction = [] if outcome.token is None else [outcome.token]
        self.tokens.extend(drafts[: outcome.accepted] + bonus_or_correction)
        self.awaiting_correction = outcome.token is None
        self.round += 1
        return Verdict(round=proposal.round, accepted=outcome.accepted, token=outcome.token,
                       residual_p=outcome.residual_p,
                       verify_ms=pending.compute_ms + (time.perf_counter() - start) * 1e3,
                       target_forward_passes=self.forward_passes, relaxed_accepted=outcome.relaxed,
                       queue_ms=pending.queue_ms)

    def _inputs(self, pending: PendingBlock) -> RuleInputs:
        proposal = pending.proposal
        draft_hidden = None if proposal.hidden_states is None else proposal.hidden_states.float()
        return RuleInputs(params=self.acceptance_params, target_hidden=pending.hidden, lm_head=self.lm_head,
                          draft_hidden=draft_hidden, top_q=proposal.top_q, channel=proposal.channel,
                          head=self.head)

    def _admit(self, proposal: Proposal, server_tokens: int = 0) -> None:
        """Check the proposal against the session state and budget; apply a deferred correction."""
        if self.slot is None:
            raise SessionStateError("open: the session has no KV slot (prefill first, or it was closed)")
        if self.pending_block:
            raise SessionStateError(f"round: round {self.round} is still waiting for its hidden states")
        if proposal.round != self.round:
            raise SessionStateError(f"round: expected {self.round}, got {proposal.round}")
        proposal.check(self.block_hidden_size)  # k, q_probs / entropies lengths, hidden states: as the codec checks
        named = [("token_ids", t) for t in proposal.tokens] + [("correction", proposal.correction)] * (
            proposal.correction is not None)
        for field, token in named:
            if not 0 <= token < self.vocab_size:
                raise ValueError(f"{field}: {token} is outside the vocabulary [0, {self.vocab_size})")
        if not self.params.greedy and len(proposal.q_probs) != proposal.k:
            raise ValueError(f"q_probs: expected {proposal.k} values, got {len(proposal.q_probs)}")
        if any(not 0.0 < q <= 1.0 for q in proposal.q_probs):
            raise ValueError("q_probs: every q(x) must be in (0, 1]")
        if self.needs.top_q and proposal.k and (proposal.top_q is None or proposal.top_q.probs.shape[0] != proposal.k):
            raise ValueError(f"top_q: acceptance {self.rule.name!r} needs the draft's top-k q for each of {proposal.k} tokens")
        if self.awaiting_correction != (proposal.correction is not None):
            want = "requires" if self.awaiting_correction else "must not carry"
            raise SessionStateError(f"correction: round {self.round} {want} a correction token")
        # committed so far + the correction this block carries + up to k drafts + bonus/correction
        committed = len(self.tokens) - self.prompt_len + (proposal.correction is not None)
        most = committed + max(proposal.k + 1, server_tokens)
        if most > self.max_new_tokens:
            raise SessionStateError(f"max_new_tokens: this block could commit up to {most} tokens, past "
                                    f"the session's max_new_tokens {self.max_new_tokens}")
        if proposal.correction is not None:
            self.tokens.append(proposal.correction)
