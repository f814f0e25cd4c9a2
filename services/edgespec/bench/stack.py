"""`loopback_stack`: a real target server and draft server (embedded orchestrator) in this
process on 127.0.0.1, optionally with an emulated link between them, yielding an SDK client.
What `edgespec bench` and its policy sweep measure through; not a test fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


@asynccontextmanager
async def loopback_stack(target, draft, link=None, telemetry: tuple | None = None) -> AsyncIterator:
    """Start both servers over the loaded `target`/`draft`; yield an AsyncClient; stop them all.
    `telemetry`: the (target, draft) Telemetry objects to use instead of the default ones."""
    from edgespec.draft.config import DraftConfig
    from edgespec.draft.serve import emulated_link, start_draft
    from edgespec.orchestrator.config import OrchestratorConfig
    from edgespec.target.config import TargetConfig
    from edgespec.target.serve import start_target, stop_target
    from edgespec_client import AsyncClient
    target_telemetry, draft_telemetry = telemetry or (None, None)
    target_running, target_servicer = await start_target(TargetConfig(), target, target_telemetry)
    draft_server = None
    config = DraftConfig(orchestrator=OrchestratorConfig(target=target_running.address))
    try:
        async with emulated_link(config, link) as (config, _proxy):
            draft_server = await start_draft(config, draft, draft_telemetry)
            try:
                async with AsyncClient(draft_server.running.address, timeout=3600) as client:
                    yield client
            finally:
                await draft_server.running.stop()
                await draft_server.shutdown()
    finally:
        await stop_target(target_running, target_servicer)
