"""`edgespec draft`: load the draft model and serve `edgespec.v1.Drafter` plus, by default, the
SDK-facing `edgespec.v1.Orchestrator` in the same process (the edge deployment: one command)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace

from edgespec.draft.config import DraftConfig
from edgespec.draft.servicer import DrafterServicer
from edgespec.models.batch_engine import BatchEngine
from edgespec.models.draft_runtime import DraftRuntimeOptions, LoadedDraft, load_draft
from edgespec.models.engine_sequence import EngineSequence
from edgespec.models.loading import set_threads
from edgespec.net.link import LinkSpec
from edgespec.net.proxy import DelayProxy, parse_address
from edgespec.orchestrator.backends import LocalDraftBackend
from edgespec.orchestrator.serve import orchestrator_servicer
from edgespec.rpc.server import RunningServer, start_server
from edgespec.rpc.service_names import DRAFTER_SERVICE, ORCHESTRATOR_SERVICE
from edgespec.telemetry.runtime import Telemetry, process_telemetry
from edgespec.v1 import draft_pb2_grpc, orchestrator_pb2_grpc

log = logging.getLogger(__name__)


@dataclass
class DraftServer:
    """A running draft server and what it must release on shutdown: `resources` holds exactly
    what `start_draft` created (never what its caller passed in)."""

    running: RunningServer
    drafter: DrafterServicer
    resources: AsyncExitStack
    engine: BatchEngine | None = None   # the shared draft engine (with `--batch`)

    async def shutdown(self) -> None:
        await self.drafter.shutdown()
        await self.resources.aclose()


@asynccontextmanager
async def emulated_link(config: DraftConfig, link: LinkSpec | None
                        ) -> AsyncIterator[tuple[DraftConfig, DelayProxy | None]]:
    """Compose link emulation in: with `link`, a DelayProxy in front of the target and the config
    whose orchestrator dials it; without, the config as it is. The proxy stops on exit."""
    if link is None:
        yield config, None
        return
    if not config.embed_orchestrator:
        raise ValueError("link: emulating the target link needs the embedded orchestrator (drop --no-orchestrator)")
    proxy = DelayProxy(upstream=parse_address(config.orchestrator.target, "target"), link=link)
    await proxy.start()
    try:
        yield replace(config, orchestrator=replace(config.orchestrator, target=proxy.address)), proxy
    finally:
        await proxy.stop()


def runtime_options(config: DraftConfig) -> DraftRuntimeOptions:
    return DraftRuntimeOptions(runtime=config.runtime, threads=config.draft_threads, vocab_trim=config.vocab_trim,
                               dtype=config.dtype, device=config.device)


def batching_draft(draft: LoadedDraft, config: DraftConfig, telemetry: Telemetry,
                   resources: AsyncExitStack) -> tuple[LoadedDraft, BatchEngine, int]:
    """`draft` with its sessions opened in one batch engine (closed by `resources` before the
    model), the engine, and how many sessions may draft at once (Drafter streams + embedded
    generations); each session blocks its own worker thread on the engine, which batches them."""
    if draft.runner is None:
        raise ValueError(f"batch: the {draft.runtime} draft runtime cannot batch sessions")
    sessions = config.max_sessions + (config.orchestrator.max_sessions if config.embed_orchestrator else 0)
    engine = BatchEngine(draft.runner(config.engine, sessions), config.engine,
                         on_step=telemetry.metrics.observe_engine_step)
    resources.callback(engine.close)
    telemetry.metrics.watch_kv_pool(engine.pool, "draft")
    return replace(draft, open_sequence=EngineSequence.opener(engine, asyncio.get_running_loop())), engine, sessions


async def start_draft(config: DraftConfig, draft: LoadedDraft | None = None,
                      telemetry: Telemetry | None = None) -> DraftServer:
    """Start a draft server (loading the model unless `draft` is given; telemetry from the config
    unless `telemetry` is given). Whatever it creates, its DraftServer closes."""
    resources = AsyncExitStack()
    if draft is None:
        draft = load_draft(config.model, runtime_options(config))
        resources.callback(draft.close)
    if telemetry is None:
        telemetry = Telemetry(config.telemetry)
        resources.callback(telemetry.close)
    engine = None
    if config.engine is None:   # every session's forwards on one model thread, each its own context
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="draft-model")
    else:
        draft, engine, sessions = batching_draft(draft, config, telemetry, resources)
        executor = ThreadPoolExecutor(max_workers=sessions, thread_name_prefix="draft-session")
    resources.callback(executor.shutdown, wait=True)  # before the model it runs on is freed
    drafter = DrafterServicer(draft, config, executor, telemetry)
    orchestrator = None
    if config.embed_orchestrator:
        orchestrator, channel = orchestrator_servicer(
            config.orchestrator, draft.tokenizer, draft.eos_token_ids, LocalDraftBackend(draft, executor, telemetry),
            telemetry)
        resources.push_async_callback(channel.close)

    def register(server) -> list[str]:
        draft_pb2_grpc.add_DrafterServicer_to_server(drafter, server)
        if orchestrator is None:
            return [DRAFTER_SERVICE]
        orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(orchestrator, server)
        return [DRAFTER_SERVICE, ORCHESTRATOR_SERVICE]
    try:
        running = await start_server(config.server, register, telemetry.metrics.count_error)
    except BaseException:
        await resources.aclose()
        raise
    drafter.start()
    return DraftServer(running, drafter, resources, engine)


async def serve(config: DraftConfig, link: LinkSpec | None = None) -> None:
    """`edgespec draft`: the server until signalled; `link` puts an emulated link before the target."""
    set_threads(config.threads)
    with process_telemetry("edgespec-draft", config.telemetry) as telemetry:
        async with emulated_link(config, link) as (config, _proxy):
            server = await start_draft(config, telemetry=telemetry)
            log.info("draft %s ready on %s (target %s%s)", server.drafter.draft.name, server.running.address,
                     config.orchestrator.target, f" via emulated link: {link.describe()}" if link else "")
            try:
                await server.running.wait_for_signal()
            finally:
                await server.shutdown()
