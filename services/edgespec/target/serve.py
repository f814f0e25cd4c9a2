"""`edgespec target`: load the target model and serve `edgespec.v1.Verifier` until signalled."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from edgespec.models.loading import set_threads
from edgespec.models.presets import load_model
from edgespec.rpc.server import RunningServer, start_server
from edgespec.target.config import TargetConfig
from edgespec.target.servicer import VerifierServicer
from edgespec.telemetry.runtime import Telemetry, process_telemetry
from edgespec.v1 import target_pb2, target_pb2_grpc

log = logging.getLogger(__name__)
SERVICE = target_pb2.DESCRIPTOR.services_by_name["Verifier"].full_name


async def start_target(config: TargetConfig, target=None,
                       telemetry: Telemetry | None = None) -> tuple[RunningServer, VerifierServicer]:
    """Start a target server (loading the model unless `target` is given; telemetry from the
    config unless `telemetry` is given)."""
    target = target or load_model(config.model, "target", dtype=config.dtype, device=config.device)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="target-model")
    servicer = VerifierServicer(target, config, executor, telemetry or Telemetry(config.telemetry))

    def register(server) -> list[str]:
        target_pb2_grpc.add_VerifierServicer_to_server(servicer, server)
        return [SERVICE]
    running = await start_server(config.server, register, servicer.telemetry.metrics.count_error)
    servicer.start()
    return running, servicer


async def serve(config: TargetConfig) -> None:
    set_threads(config.threads)
    with process_telemetry("edgespec-target", config.telemetry) as telemetry:
        running, servicer = await start_target(config, telemetry=telemetry)
        log.info("target %s ready on %s", servicer.target.name, running.address)
        try:
            await running.wait_for_signal(servicer.drain)
        finally:
            await servicer.shutdown()
