"""The stacks `edgespec bench` measures through, each a real target server and draft server
(embedded orchestrator) on 127.0.0.1, optionally with an emulated link between them, yielding an
SDK client: `process_stack` runs them as two processes (the default: device and server never
share an interpreter), `loopback_stack` in this process over models it is handed (telemetry
bench, `--in-process`). Not test fixtures."""

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


@asynccontextmanager
async def process_stack(model: str, runtime: str | None = None, link=None, draft_model: str | None = None,
                        vocab_trim: str | None = None) -> AsyncIterator:
    """`edgespec target` and `edgespec draft` (embedded orchestrator) as two processes on
    127.0.0.1, one model thread each, as on a device and a server (no shared GIL: the draft can
    pre-draft while the target verifies); `link` becomes the draft's `--emulate-*` flags. Yields
    an AsyncClient; both processes are stopped on exit."""
    import asyncio
    import pathlib
    import tempfile

    from edgespec.demo import start_service, stop_service
    from edgespec_client import AsyncClient
    draft_args = ["--model", draft_model or model, *(["--runtime", runtime] if runtime else []),
                  *(["--vocab-trim", vocab_trim] if vocab_trim else [])]
    if link is not None:
        draft_args += ["--emulate-rtt", str(link.rtt_ms), "--emulate-jitter", str(link.jitter_ms),
                       "--emulate-rate", str(link.rate_mbit)]
    procs = []
    with tempfile.TemporaryDirectory(prefix="edgespec-bench-") as tmp:
        try:
            target, target_addr = await asyncio.to_thread(
                start_service, "target", ["--model", model], pathlib.Path(tmp, "target"))
            procs.append(target)
            draft, draft_addr = await asyncio.to_thread(
                start_service, "draft", [*draft_args, "--target", target_addr], pathlib.Path(tmp, "draft"))
            procs.append(draft)
            async with AsyncClient(draft_addr, timeout=3600) as client:
                yield client
        finally:
            for proc in reversed(procs):
                await asyncio.to_thread(stop_service, proc)
