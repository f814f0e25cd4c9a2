"""`edgespec orchestrator`: serve `edgespec.v1.Orchestrator` in its own process, talking to a
remote draft service and the target. (`edgespec draft` embeds the same servicer by default.)"""

from __future__ import annotations

import logging

import grpc

from edgespec.models.presets import load_tokenizer, stop_token_ids
from edgespec.orchestrator.backends import DraftBackend, RemoteDraftBackend
from edgespec.orchestrator.config import OrchestratorConfig
from edgespec.orchestrator.servicer import OrchestratorServicer
from edgespec.rpc.remote import StreamLimits
from edgespec.rpc.security import aio_channel
from edgespec.rpc.service_names import DRAFTER_SERVICE, ORCHESTRATOR_SERVICE, VERIFIER_SERVICE
from edgespec.rpc.server import RunningServer, channel_options, start_server
from edgespec.rpc.targets import balancing_options, parse_upstream
from edgespec.telemetry.runtime import Telemetry, process_telemetry
from edgespec.v1 import orchestrator_pb2_grpc

log = logging.getLogger(__name__)


def upstream_channel(address: str, flag: str, service: str, config: OrchestratorConfig) -> grpc.aio.Channel:
    """A channel to the replicas `address` names (`--target`/`--draft`), round_robin over the
    healthy ones, secured as `config.upstream` says."""
    upstream = parse_upstream(address, flag)
    return aio_channel(upstream.target, config.upstream, [*channel_options(config.server), *balancing_options(service)])


def orchestrator_servicer(config: OrchestratorConfig, tokenizer, eos_token_ids: tuple[int, ...],
                          drafts: DraftBackend, telemetry: Telemetry) -> tuple[OrchestratorServicer, grpc.aio.Channel]:
    """An orchestrator servicer and the target channel it owns (create on the serving loop)."""
    channel = upstream_channel(config.target, "target", VERIFIER_SERVICE, config)
    return OrchestratorServicer(config, tokenizer, eos_token_ids, channel, drafts, telemetry), channel


async def start_orchestrator(config: OrchestratorConfig,
                             telemetry: Telemetry) -> tuple[RunningServer, list[grpc.aio.Channel]]:
    """Start a standalone orchestrator; `telemetry` stays the caller's to close."""
    if not config.draft:
        raise ValueError("draft: a standalone orchestrator needs --draft HOST:PORT of a draft service")
    tokenizer = load_tokenizer(config.tokenizer)
    draft_channel = upstream_channel(config.draft, "draft", DRAFTER_SERVICE, config)
    limits = StreamLimits(session_timeout_s=config.session_timeout_s, round_timeout_s=config.round_timeout_s)
    servicer, target_channel = orchestrator_servicer(
        config, tokenizer, stop_token_ids(config.tokenizer, tokenizer), RemoteDraftBackend(draft_channel, limits, config.resume),
        telemetry)

    def register(server) -> list[str]:
        orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(servicer, server)
        return [ORCHESTRATOR_SERVICE]
    return await start_server(config.server, register, telemetry.metrics.count_error), [draft_channel, target_channel]


async def serve(config: OrchestratorConfig) -> None:
    with process_telemetry("edgespec-orchestrator", config.telemetry) as telemetry:
        running, channels = await start_orchestrator(config, telemetry)
        log.info("orchestrator ready on %s (draft %s, target %s)", running.address, config.draft, config.target)
        try:
            await running.wait_for_signal()
        finally:
            for channel in channels:
                await channel.close()
