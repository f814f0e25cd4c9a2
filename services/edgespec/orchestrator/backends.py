"""Draft backends for the orchestrator: the in-process draft model (the default edge deployment)
or a remote Drafter service. Both hand out objects implementing the core Drafter protocol.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Protocol

import grpc

from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.types import Drafter
from edgespec.models.draft_runtime import LoadedDraft
from edgespec.models.local_drafter import LocalDrafter
from edgespec.rpc.remote import RemoteDrafter, StreamLimits
from edgespec.rpc.resume import ResumePolicy, ResumingDrafter, reopener
from edgespec.telemetry.observed_drafter import ObservedDrafter
from edgespec.telemetry.runtime import Telemetry
from edgespec.v1 import common_pb2, draft_pb2_grpc


class DraftBackend(Protocol):
    """Opens one drafting session per generation."""

    async def open(self, resolved: ResolvedSpec) -> Drafter: ...

    async def hidden_size(self) -> int:
        """The draft model's hidden size d (what its hidden states upload carries)."""

    async def vocab_size(self) -> int:
        """The draft model's vocabulary (prompt ids are checked against it before any prefill)."""


class LocalDraftBackend:
    """Drafts with a model loaded in this process, on its model thread or, in a batching draft
    server, in its shared batch engine (each proposal a `draft` span and a metrics sample of the
    process's telemetry)."""

    def __init__(self, draft: LoadedDraft, executor: Executor, telemetry: Telemetry) -> None:
        self.draft, self.executor, self.telemetry = draft, executor, telemetry

    async def open(self, resolved: ResolvedSpec) -> Drafter:
        drafter = LocalDrafter(self.draft, resolved, self.executor)
        await drafter.prefill()
        return ObservedDrafter(drafter, self.telemetry, self.draft.name)

    async def hidden_size(self) -> int:
        return self.draft.hidden_size

    async def vocab_size(self) -> int:
        return self.draft.vocab_size


class RemoteDraftBackend:
    """Drafts through a `edgespec.v1.Drafter` server (its replicas), resuming a broken stream."""

    def __init__(self, channel: grpc.aio.Channel, limits: StreamLimits, resume: ResumePolicy = ResumePolicy()) -> None:
        self.channel, self.limits, self.resume = channel, limits, resume
        self.info: common_pb2.ModelInfo | None = None

    async def open(self, resolved: ResolvedSpec) -> Drafter:
        drafter = await RemoteDrafter.open(self.channel, resolved, self.limits)
        return ResumingDrafter(drafter, resolved, reopener(RemoteDrafter.open, self.channel, self.limits, self.resume),
                               self.resume)

    async def hidden_size(self) -> int:
        return (await self._info()).hidden_size

    async def vocab_size(self) -> int:
        return (await self._info()).vocab_size

    async def _info(self) -> common_pb2.ModelInfo:
        if self.info is None:  # asked once: the draft model does not change under us
            stub = draft_pb2_grpc.DrafterStub(self.channel)
            self.info = await stub.Info(common_pb2.InfoRequest(), timeout=self.limits.open_timeout_s)
        return self.info
