"""`edgespec draft`: load the draft model and serve `edgespec.v1.Drafter` plus, by default, the
SDK-facing `edgespec.v1.Orchestrator` in the same process (the edge deployment: one command)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc

from edgespec.draft.config import DraftConfig
from edgespec.draft.servicer import DrafterServicer
from edgespec.models.loading import set_threads
from edgespec.models.presets import LoadedModel, load_model
from edgespec.orchestrator.backends import LocalDraftBackend
from edgespec.orchestrator.serve import ORCHESTRATOR_SERVICE, orchestrator_servicer
from edgespec.rpc.server import RunningServer, start_server
from edgespec.v1 import draft_pb2, draft_pb2_grpc, orchestrator_pb2_grpc

log = logging.getLogger(__name__)
DRAFTER_SERVICE = draft_pb2.DESCRIPTOR.services_by_name["Drafter"].full_name


@dataclass
class DraftServer:
    """A running draft server and what it must release on shutdown."""

    running: RunningServer
    drafter: DrafterServicer
    target_channel: grpc.aio.Channel | None

    async def shutdown(self) -> None:
        await self.drafter.shutdown()
        if self.target_channel is not None:
            await self.target_channel.close()
        self.drafter.executor.shutdown(wait=False)


async def start_draft(config: DraftConfig, draft: LoadedModel | None = None) -> DraftServer:
    """Start a draft server (loading the model unless `draft` is given)."""
    draft = draft or load_model(config.model, "draft", dtype=config.dtype, device=config.device)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="draft-model")
    drafter = DrafterServicer(draft, config, executor)
    orchestrator, channel = None, None
    if config.embed_orchestrator:
        orchestrator, channel = orchestrator_servicer(
            config.orchestrator, draft.tokenizer, draft.eos_token_ids, LocalDraftBackend(draft, executor))

    def register(server) -> list[str]:
        draft_pb2_grpc.add_DrafterServicer_to_server(drafter, server)
        if orchestrator is None:
            return [DRAFTER_SERVICE]
        orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(orchestrator, server)
        return [DRAFTER_SERVICE, ORCHESTRATOR_SERVICE]
    running = await start_server(config.server, register)
    drafter.start()
    return DraftServer(running, drafter, channel)


async def serve(config: DraftConfig) -> None:
    set_threads(config.threads)
    server = await start_draft(config)
    log.info("draft %s ready on %s (target %s)", server.drafter.draft.name, server.running.address,
             config.orchestrator.target)
    try:
        await server.running.wait_for_signal()
    finally:
        await server.shutdown()
