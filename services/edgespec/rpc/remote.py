"""RemoteVerifier and RemoteDrafter: the Verifier/Drafter protocols over one gRPC bidi stream per
session, so the core loop runs unchanged across the network. They measure bytes on the wire,
bound each round with a timeout, and keep at most `WINDOW` rounds in flight (HTTP/2 would buffer
megabytes before pushing back).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from edgespec.core.hidden_upload import requested_rows, uploads_on_request
from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.types import Committed, DraftPlan, Proposal, Verdict
from edgespec.rpc import codec
from edgespec.v1 import common_pb2, draft_pb2, draft_pb2_grpc, target_pb2, target_pb2_grpc

WINDOW = 2  # rounds in flight per session, at most
HIDDEN_STATUS = "Internal error from Core"  # what grpc.aio reports for a write to a stream the server ended


class StreamBroken(ConnectionError):
    """The session stream ended under us; `code` is its final gRPC status (OK: closed cleanly)."""

    def __init__(self, message: str, code: grpc.StatusCode) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class StreamLimits:
    """Deadlines for one session stream: the whole session, and each round's answer."""

    session_timeout_s: float = 3600.0
    round_timeout_s: float = 60.0
    open_timeout_s: float = 120.0


class _Session:
    """A bidi stream with request/response pairing, a round timeout and an in-flight window."""

    def __init__(self, call: grpc.aio.StreamStreamCall, limits: StreamLimits) -> None:
        self.call, self.limits = call, limits
        self.window = asyncio.Semaphore(WINDOW)

    async def ask(self, request, timeout_s: float):
        """Write `request`, read its answer; return (answer, bytes up, bytes down)."""
        async with self.window:
            await self._write(request)
            response = await self._read(timeout_s)
        return response, request.ByteSize(), response.ByteSize()

    async def ask_many(self, request, n: int, timeout_s: float) -> AsyncIterator[tuple]:
        """Write `request`, yield its n answers as they arrive, as (answer, bytes up, bytes down)."""
        async with self.window:
            await self._write(request)
            for i in range(n):
                response = await self._read(timeout_s)
                yield response, request.ByteSize() if i == 0 else 0, response.ByteSize()

    async def _write(self, request) -> None:
        try:
            await self.call.write(request)
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError) as exc:
            # The server ended the stream before this write (our requests' own errors come back on
            # reads). grpc.aio may hide that status behind INTERNAL "Internal error from Core"
            # (grpc#36066): then it is a stream that ended under us, i.e. UNAVAILABLE.
            code, details = await self.call.code(), await self.call.details()
            if code is grpc.StatusCode.INTERNAL and details == HIDDEN_STATUS:
                code = grpc.StatusCode.UNAVAILABLE
            raise StreamBroken(f"upstream: the session stream ended ({code.name}: {details})", code) from exc

    async def _read(self, timeout_s: float):
        async with asyncio.timeout(timeout_s):  # no task per message, unlike wait_for
            response = await self.call.read()
        if response is grpc.aio.EOF:
            raise StreamBroken("upstream: the session stream was closed by the server", await self.call.code())
        return response

    async def close(self) -> None:
        try:
            await self.call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass
        self.call.cancel()


class RemoteVerifier:
    """A Verifier whose target runs behind a `edgespec.v1.Verifier` server. For a mismatch-first
    semantic session a block goes up without its hidden states; the rows the target asks for
    (`hidden_request`) follow in a second message, and bytes count both exchanges."""

    def __init__(self, session: _Session, opened: common_pb2.SessionOpened, mismatch_first: bool = False) -> None:
        self.session = session
        self.session_id = opened.session_id
        self.vocab_size = opened.vocab_size
        self.mismatch_first = mismatch_first

    @classmethod
    async def open(cls, channel: grpc.aio.Channel, resolved: ResolvedSpec, limits: StreamLimits = StreamLimits(),
                   wait_for_ready: bool = False) -> RemoteVerifier:
        """Open a session; `wait_for_ready`: wait for a replica to come up instead of failing fast."""
        call = target_pb2_grpc.VerifierStub(channel).Session(timeout=limits.session_timeout_s,
                                                             wait_for_ready=wait_for_ready)
        session = _Session(call, limits)
        spec = resolved.spec
        request = target_pb2.VerifierRequest(open=codec.spec_to_pb(spec))
        response, _, _ = await session.ask(request, limits.open_timeout_s)
        return cls(session, response.opened, uploads_on_request(resolved.needs, spec.acceptance_params))

    async def verify(self, proposal: Proposal) -> Verdict:
        block = codec.proposal_to_pb(proposal, self.session_id, hidden=not self.mismatch_first)
        timeout = self.session.limits.round_timeout_s
        response, up, down = await self.session.ask(target_pb2.VerifierRequest(block=block), timeout)
        if response.HasField("hidden_request"):
            upload = _hidden_upload(proposal, response.hidden_request)
            response, up2, down2 = await self.session.ask(target_pb2.VerifierRequest(hidden=upload), timeout)
            up, down = up + up2, down + down2
        return codec.verdict_from_pb(response.verdict, self.vocab_size, bytes_up=up, bytes_down=down)

    async def autoregress(self, proposal: Proposal, n: int) -> AsyncIterator[Verdict]:
        block = codec.proposal_to_pb(proposal, self.session_id)
        block.server_tokens = n
        request = target_pb2.VerifierRequest(block=block)
        async for response, up, down in self.session.ask_many(request, n, self.session.limits.round_timeout_s):
            yield codec.verdict_from_pb(response.verdict, self.vocab_size, bytes_up=up, bytes_down=down)

    async def close(self) -> None:
        await self.session.close()


def _hidden_upload(proposal: Proposal, request: target_pb2.HiddenRequest) -> target_pb2.HiddenUpload:
    """The rows of `proposal`'s hidden states the target asked for."""
    if proposal.hidden_states is None or request.round != proposal.round:
        raise ConnectionError("upstream: the target asked for hidden states this block does not have")
    positions = list(request.positions)
    if any(not 0 <= i < proposal.k for i in positions):
        raise ConnectionError(f"upstream: hidden_request positions {positions} are outside the block")
    rows = requested_rows(proposal.hidden_states, positions)
    return target_pb2.HiddenUpload(round=proposal.round, hidden_states=codec.tensor_to_pb(rows))


class RemoteDrafter:
    """A Drafter whose draft model runs behind a `edgespec.v1.Drafter` server."""

    def __init__(self, session: _Session, opened: common_pb2.SessionOpened, block_hidden_size: int | None) -> None:
        self.session = session
        self.session_id = opened.session_id
        self.block_hidden_size = block_hidden_size  # the draft's d when its blocks carry hidden states

    @classmethod
    async def open(cls, channel: grpc.aio.Channel, resolved: ResolvedSpec, limits: StreamLimits = StreamLimits(),
                   wait_for_ready: bool = False) -> RemoteDrafter:
        spec = resolved.spec
        call = draft_pb2_grpc.DrafterStub(channel).Session(timeout=limits.session_timeout_s,
                                                           wait_for_ready=wait_for_ready)
        session = _Session(call, limits)
        response, _, _ = await session.ask(draft_pb2.DrafterRequest(open=codec.spec_to_pb(spec)),
                                           limits.open_timeout_s)
        hidden = spec.draft_hidden_size if spec.send_hidden_states else None
        return cls(session, response.opened, hidden)

    async def propose(self, plan: DraftPlan) -> Proposal:
        request = draft_pb2.DrafterRequest(propose=codec.plan_to_pb(plan))
        response, _, _ = await self.session.ask(request, self.session.limits.round_timeout_s)
        return codec.proposal_from_pb(response.block, self.block_hidden_size)

    async def commit(self, verdict: Verdict) -> Committed:
        request = draft_pb2.DrafterRequest(commit=codec.verdict_to_pb(verdict))
        response, _, _ = await self.session.ask(request, self.session.limits.round_timeout_s)
        return Committed(tokens=tuple(response.committed.token_ids))

    async def close(self) -> None:
        await self.session.close()
