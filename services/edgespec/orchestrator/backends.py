"""Draft backends for the orchestrator: the in-process draft model (the default edge deployment)
or a remote Drafter service. Both hand out objects implementing the core Drafter protocol.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Protocol

import grpc

from edgespec.core.types import Drafter, SessionSpec
from edgespec.models.local_drafter import LocalDrafter
from edgespec.models.presets import LoadedModel
from edgespec.rpc.remote import RemoteDrafter, StreamLimits


class DraftBackend(Protocol):
    """Opens one drafting session per generation."""

    async def open(self, spec: SessionSpec) -> Drafter: ...


class LocalDraftBackend:
    """Drafts with a model loaded in this process, on its own model thread."""

    def __init__(self, draft: LoadedModel, executor: Executor) -> None:
        self.draft, self.executor = draft, executor

    async def open(self, spec: SessionSpec) -> Drafter:
        drafter = LocalDrafter(self.draft.model, spec, self.executor)
        await drafter.prefill()
        return drafter


class RemoteDraftBackend:
    """Drafts through a `edgespec.v1.Drafter` server."""

    def __init__(self, channel: grpc.aio.Channel, limits: StreamLimits) -> None:
        self.channel, self.limits = channel, limits

    async def open(self, spec: SessionSpec) -> Drafter:
        return await RemoteDrafter.open(self.channel, spec, self.limits)
