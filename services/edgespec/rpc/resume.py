"""Sessions that outlive a broken stream. `ResumingVerifier` and `ResumingDrafter` wrap the
remote Verifier/Drafter of one generation: when its stream breaks (UNAVAILABLE, a reset, a
replica killed or drained past its grace, no answer within the round timeout), they open a new
session — on whichever healthy replica the channel's round_robin picks, waiting for one to come
up — whose prompt is the original prompt plus every token committed so far (one re-prefill), and
repeat the request that failed. Rounds keep their numbers for the loop (the new session counts
from 0; an offset maps them), and sampled sessions get a fresh seed derived from the original
one, so the output keeps its law. Greedy output is identical to an uninterrupted run.

Stream-level resumption is ours because gRPC cannot retry a stream that has already answered;
opening each new session uses gRPC's own machinery (the retry policy and round_robin of
`rpc/targets.py`, `wait_for_ready`). It does NOT resume the SDK's own stream to the orchestrator.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

import grpc

from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.types import Committed, DraftPlan, Proposal, Verdict
from edgespec.rpc.remote import StreamBroken, StreamLimits

log = logging.getLogger(__name__)
RESUMABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.OK})
SEED_MIX = 1_000_033   # a resumed session's seed: original * SEED_MIX + resumes (mod 2^63)


S = TypeVar("S")  # the wrapped remote session (RemoteVerifier / RemoteDrafter)


@dataclass(frozen=True)
class ResumePolicy:
    """How often one generation may resume its sessions, and how long each reopen may wait for
    a replica to become ready; when it cannot, the break's own status fails the generation
    (0 resumes: every broken stream does)."""

    max_resumes: int = 3
    reopen_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_resumes < 0 or self.reopen_timeout_s <= 0:
            raise ValueError(f"max_resumes must be >= 0 and reopen_timeout_s > 0, got {self.max_resumes} and "
                             f"{self.reopen_timeout_s}")


def reopener(open_session: Callable[..., Awaitable[S]], channel: grpc.aio.Channel, limits: StreamLimits,
             policy: ResumePolicy) -> Callable[[ResolvedSpec], Awaitable[S]]:
    """How a wrapper reopens: `open_session` (RemoteVerifier.open / RemoteDrafter.open) on the
    same channel — round_robin picks a healthy replica — waiting up to `reopen_timeout_s` for one."""
    async def reopen(resolved: ResolvedSpec) -> S:
        async with asyncio.timeout(policy.reopen_timeout_s):
            return await open_session(channel, resolved, limits, wait_for_ready=True)
    return reopen


def is_resumable(exc: BaseException) -> bool:
    """A failure of the stream, not of the request: worth a new session."""
    if isinstance(exc, TimeoutError):
        return True
    if isinstance(exc, StreamBroken):
        return exc.code in RESUMABLE_CODES
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code() in RESUMABLE_CODES
    return False


class _Resumable(Generic[S]):
    """What both wrappers share: the committed transcript, the round offset and the reopen."""

    def __init__(self, session: S, resolved: ResolvedSpec, reopen: Callable[[ResolvedSpec], Awaitable[S]],
                 policy: ResumePolicy, peer: str) -> None:
        self.session, self.resolved, self.reopen, self.policy, self.peer = session, resolved, reopen, policy, peer
        self.committed: list[int] = []   # tokens committed since the original prompt
        self.offset = 0                  # outer round = inner round + offset
        self.resumes = 0

    async def _resume(self, exc: BaseException, next_round: int, also: tuple[int, ...] = ()) -> None:
        """Replace the session with one that continues after `self.committed` + `also` (tokens
        committed by the request that broke; in the transcript once the new session is open),
        or re-raise."""
        if not is_resumable(exc) or self.resumes >= self.policy.max_resumes:
            raise exc
        self.resumes += 1
        log.warning("%s stream broke (%s); resuming after %d committed tokens (resume %d of %d)", self.peer,
                    _describe(exc), len(self.committed) + len(also), self.resumes, self.policy.max_resumes)
        await self.session.close()
        spec, params, committed = self.resolved.spec, self.resolved.spec.params, (*self.committed, *also)
        resumed = replace(spec, prompt_ids=spec.prompt_ids + committed,
                          max_new_tokens=spec.max_new_tokens - len(committed),
                          params=replace(params, seed=(params.seed * SEED_MIX + self.resumes) % 2**63))
        try:
            self.session = await self.reopen(replace(self.resolved, spec=resumed))
        except Exception as reopen_failed:  # noqa: BLE001 - no replica within the timeout: the break stands
            log.warning("%s: no session could be reopened (%s)", self.peer, _describe(reopen_failed))
            raise exc from reopen_failed
        self.committed += also
        self.offset = next_round

    async def close(self) -> None:
        await self.session.close()


class ResumingVerifier(_Resumable):
    """A Verifier (a RemoteVerifier inside) that resumes on a new target session."""

    def __init__(self, session, resolved: ResolvedSpec, reopen, policy: ResumePolicy = ResumePolicy()) -> None:
        super().__init__(session, resolved, reopen, policy, "target")
        self.passes_before = 0   # target forward passes of the sessions replaced so far
        self.passes = 0          # ... and of the current one

    @property
    def session_id(self) -> str:
        return self.session.session_id

    async def verify(self, proposal: Proposal) -> Verdict:
        while True:
            try:
                verdict = await self.session.verify(self._inner(proposal))
                break
            except Exception as exc:  # noqa: BLE001 - _resume re-raises what is not a broken stream
                proposal = await self._resume_before(proposal, exc)
        self._commit(proposal, verdict)
        return self._outer(verdict)

    async def autoregress(self, proposal: Proposal, n: int) -> AsyncIterator[Verdict]:
        while n:
            try:
                async for verdict in self.session.autoregress(self._inner(proposal), n):
                    self._commit(proposal, verdict)
                    yield self._outer(verdict)
                    n -= 1
                    proposal = replace(proposal, round=proposal.round + 1, correction=None)
                return
            except Exception as exc:  # noqa: BLE001 - _resume re-raises what is not a broken stream
                proposal = await self._resume_before(proposal, exc)

    def _commit(self, proposal: Proposal, verdict: Verdict) -> None:
        """The transcript after `verdict`: the correction the proposal carried, its accepted
        tokens, the bonus/correction (a residual's correction arrives with the next proposal)."""
        self.committed += ((proposal.correction,) if proposal.correction is not None else ()) + \
            proposal.tokens[:verdict.accepted] + ((verdict.token,) if verdict.token is not None else ())

    async def _resume_before(self, proposal: Proposal, exc: BaseException) -> Proposal:
        """Resume so that `proposal` is the new session's round 0; a correction it carried is
        committed already, so the new session's prompt holds it and the proposal no longer does."""
        await self._resume(exc, proposal.round, (proposal.correction,) if proposal.correction is not None else ())
        self.passes_before, self.passes = self.passes_before + self.passes, 0
        return replace(proposal, correction=None)

    def _inner(self, proposal: Proposal) -> Proposal:
        return replace(proposal, round=proposal.round - self.offset)

    def _outer(self, verdict: Verdict) -> Verdict:
        self.passes = verdict.target_forward_passes
        return replace(verdict, round=verdict.round + self.offset,
                       target_forward_passes=verdict.target_forward_passes + self.passes_before)


class ResumingDrafter(_Resumable):
    """A Drafter (a RemoteDrafter inside) that resumes on a new draft session. A verdict whose
    correction the draft samples (`residual_p`) cannot be replayed when the draft died while
    committing it: that failure ends the generation with the stream's status."""

    def __init__(self, session, resolved: ResolvedSpec, reopen, policy: ResumePolicy = ResumePolicy()) -> None:
        super().__init__(session, resolved, reopen, policy, "draft")
        self.next_round = 0                  # the outer round the next proposal carries
        self.last: Proposal | None = None
        self.correction: int | None = None   # a sampled residual the next proposal must carry

    async def propose(self, plan: DraftPlan) -> Proposal:
        while True:
            try:
                proposal = await self.session.propose(plan)
                break
            except Exception as exc:  # noqa: BLE001 - _resume re-raises what is not a broken stream
                await self._resume(exc, self.next_round)
        if self.correction is not None:   # a resumed draft session never saw the verdict it answers
            proposal, self.correction = replace(proposal, correction=self.correction), None
        self.last = replace(proposal, round=proposal.round + self.offset)
        return self.last

    async def commit(self, verdict: Verdict) -> Committed:
        try:
            committed = await self.session.commit(replace(verdict, round=verdict.round - self.offset))
        except Exception as exc:  # noqa: BLE001 - _resume re-raises what is not a broken stream
            if verdict.token is None or self.last is None:
                raise
            committed = Committed(self.last.tokens[:verdict.accepted] + (verdict.token,))
            await self._resume(exc, verdict.round + 1, committed.tokens)
        else:
            self.committed += committed.tokens
            if verdict.residual_p is not None:
                self.correction = committed.tokens[-1]
        self.next_round = verdict.round + 1
        return committed


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"
