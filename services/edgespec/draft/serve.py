"""`edgespec draft`: load the draft model and serve `edgespec.v1.Drafter` plus, by default, the
SDK-facing `edgespec.v1.Orchestrator` in the same process (the edge deployment: one command)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import grpc

from edgespec.draft.config import DraftConfig
from edgespec.draft.servicer import DrafterServicer
from edgespec.models.draft_runtime import DraftRuntimeOptions, LoadedDraft, load_draft
from edgespec.models.loading import set_threads
from edgespec.net.proxy import DelayProxy, parse_address
from edgespec.orchestrator.backends import LocalDraftBackend
from edgespec.orchestrator.serve import ORCHESTRATOR_SERVICE, orchestrator_servicer
from edgespec.rpc.server import RunningServer, start_server
from edgespec.telemetry.runtime import Telemetry, process_telemetry
from edgespec.v1 import draft_pb2, draft_pb2_grpc, orchestrator_pb2_grpc

log = logging.getLogger(__name__)
DRAFTER_SERVICE = draft_pb2.DESCRIPTOR.services_by_name["Drafter"].full_name


@dataclass
class DraftServer:
    """A running draft server and what it must release on shutdown."""

    running: RunningServer
    drafter: DrafterServicer
    target_channel: grpc.aio.Channel | None
    link_proxy: DelayProxy | None = None    # the emulated link to the target (`config.link`)

    async def shutdown(self) -> None:
        await self.drafter.shutdown()
        self.drafter.telemetry.close()
        if self.target_channel is not None:
            await self.target_channel.close()
        if self.link_proxy is not None:
            await self.link_proxy.stop()
        self.drafter.executor.shutdown(wait=False)


async def start_link_proxy(config: DraftConfig) -> DelayProxy | None:
    """A DelayProxy in front of the target when `config.link` asks for an emulated link."""
    if config.link is None:
        return None
    proxy = DelayProxy(upstream=parse_address(config.orchestrator.target, "target"), link=config.link)
    await proxy.start()
    return proxy


def runtime_options(config: DraftConfig) -> DraftRuntimeOptions:
    return DraftRuntimeOptions(runtime=config.runtime, threads=config.draft_threads, vocab_trim=config.vocab_trim,
                               dtype=config.dtype, device=config.device)


async def start_draft(config: DraftConfig, draft: LoadedDraft | None = None,
                      telemetry: Telemetry | None = None) -> DraftServer:
    """Start a draft server (loading the model unless `draft` is given; telemetry from the config
    unless `telemetry` is given)."""
    draft = draft or load_draft(config.model, runtime_options(config))
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="draft-model")
    telemetry = telemetry or Telemetry(config.telemetry)
    drafter = DrafterServicer(draft, config, executor, telemetry)
    orchestrator, channel, link_proxy = None, None, await start_link_proxy(config)
    if config.embed_orchestrator:
        orchestrator_config = config.orchestrator
        if link_proxy is not None:  # the orchestrator dials the target through the emulated link
            orchestrator_config = replace(orchestrator_config, target=link_proxy.address)
        orchestrator, channel = orchestrator_servicer(
            orchestrator_config, draft.tokenizer, draft.eos_token_ids, LocalDraftBackend(draft, executor, telemetry),
            telemetry)

    def register(server) -> list[str]:
        draft_pb2_grpc.add_DrafterServicer_to_server(drafter, server)
        if orchestrator is None:
            return [DRAFTER_SERVICE]
        orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(orchestrator, server)
        return [DRAFTER_SERVICE, ORCHESTRATOR_SERVICE]
    running = await start_server(config.server, register, telemetry.metrics.count_error)
    drafter.start()
    return DraftServer(running, drafter, channel, link_proxy)


async def serve(config: DraftConfig) -> None:
    set_threads(config.threads)
    with process_telemetry("edgespec-draft", config.telemetry) as telemetry:
        server = await start_draft(config, telemetry=telemetry)
        log.info("draft %s ready on %s (target %s%s)", server.drafter.draft.name, server.running.address,
                 config.orchestrator.target, f" via emulated link: {config.link.describe()}" if config.link else "")
        try:
            await server.running.wait_for_signal()
        finally:
            await server.shutdown()
