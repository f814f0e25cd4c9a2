"""`edgespec target`: load the target model and serve `edgespec.v1.Verifier` until signalled.
`start_target` creates the batch engine (the model's forwards and KV pool); `stop_target`, its
counterpart, closes it after the sessions are gone."""

from __future__ import annotations

import logging

from edgespec.models.batch_engine import BatchEngine
from edgespec.models.loading import set_threads
from edgespec.models.presets import load_model
from edgespec.rpc.server import RunningServer, start_server
from edgespec.rpc.service_names import VERIFIER_SERVICE
from edgespec.target.config import TargetConfig
from edgespec.target.servicer import VerifierServicer
from edgespec.telemetry.runtime import Telemetry, process_telemetry
from edgespec.v1 import target_pb2_grpc

log = logging.getLogger(__name__)


async def start_target(config: TargetConfig, target=None,
                       telemetry: Telemetry | None = None) -> tuple[RunningServer, VerifierServicer]:
    """Start a target server (loading the model unless `target` is given; telemetry from the
    config unless `telemetry` is given). Stop it with `stop_target`."""
    target = target or load_model(config.model, "target", dtype=config.dtype, device=config.device)
    telemetry = telemetry or Telemetry(config.telemetry)
    engine = BatchEngine(target.model, config.engine, on_step=telemetry.metrics.observe_engine_step)
    servicer = VerifierServicer(target, config, engine, telemetry)

    def register(server) -> list[str]:
        target_pb2_grpc.add_VerifierServicer_to_server(servicer, server)
        return [VERIFIER_SERVICE]
    try:
        running = await start_server(config.server, register, servicer.telemetry.metrics.count_error)
    except BaseException:
        engine.close()
        raise
    servicer.start()
    return running, servicer


async def stop_target(running: RunningServer, servicer: VerifierServicer, drain: bool = False) -> None:
    """Stop the server (letting sessions drain within the grace period when `drain`), free the
    sessions, then close the engine `start_target` created."""
    try:
        await running.stop(servicer.drain if drain else None)
    finally:
        await servicer.shutdown()
        servicer.engine.close()


async def serve(config: TargetConfig) -> None:
    set_threads(config.threads)
    with process_telemetry("edgespec-target", config.telemetry) as telemetry:
        running, servicer = await start_target(config, telemetry=telemetry)
        log.info("target %s ready on %s (KV pool %d tokens)", servicer.target.name, running.address,
                 servicer.engine.pool.tokens)
        try:
            await running.wait_for_signal(servicer.drain)
        finally:
            await servicer.shutdown()
            servicer.engine.close()
