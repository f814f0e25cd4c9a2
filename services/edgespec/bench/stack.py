"""The stacks `edgespec bench` measures through, each a real target server and draft server
(embedded orchestrator) on 127.0.0.1, optionally with an emulated link between them, yielding an
SDK client: `process_stack` runs them as two processes (the default: device and server never
share an interpreter), `loopback_stack` in this process over models it is handed (telemetry
bench, `--in-process`); `server_processes` starts the processes alone (and a standalone
orchestrator) for the modes that watch or fuzz them (`bench fuzz`, `bench soak`). Not test
fixtures."""

from __future__ import annotations

import pathlib
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass


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


@dataclass
class Servers:
    """Server processes started by `server_processes`: role -> process and role -> address."""

    procs: dict[str, subprocess.Popen]
    addresses: dict[str, str]
    logs: dict[str, pathlib.Path]   # role -> its stdout + stderr (empty: they went to ours)

    def log_lines(self, *words: str) -> dict[str, list[str]]:
        """Per role, the lines of its log so far that contain any of `words`, each followed by
        the traceback it starts (the indented frames and the exception line)."""
        found: dict[str, list[str]] = {}
        for role, path in self.logs.items():
            out, in_block = [], False
            for line in path.read_text(errors="replace").splitlines():
                if any(word in line for word in words):
                    out.append(line)
                    in_block = True
                elif in_block and (line.startswith(" ") or out[-1].startswith(" ")):
                    out.append(line)                          # a frame, or the exception line after them
                    in_block = line.startswith(" ")
                else:
                    in_block = False
            found[role] = out
        return found


@contextmanager
def server_processes(model: str, draft_args: Sequence[str] = (), target_args: Sequence[str] = (),
                     orchestrator_args: Sequence[str] | None = None, logs: bool = False) -> Iterator[Servers]:
    """`edgespec target`, then `edgespec draft --target` it (embedded orchestrator), and with
    `orchestrator_args` a standalone `edgespec orchestrator` over both, each its own process on
    127.0.0.1 (one model thread each); all stopped (SIGTERM, then SIGKILL) on exit. `logs`: their
    output goes to files (`Servers.logs`, kept until exit) instead of this process's."""
    from edgespec.demo import start_service, stop_service
    servers = Servers({}, {}, {})
    with tempfile.TemporaryDirectory(prefix="edgespec-bench-") as tmp:
        def start(role: str, args: list[str]) -> str:
            log = pathlib.Path(tmp, f"{role}.log") if logs else None
            proc, address = start_service(role, args, pathlib.Path(tmp, role), log)
            servers.procs[role], servers.addresses[role] = proc, address
            if log is not None:
                servers.logs[role] = log
            return address
        try:
            target = start("target", ["--model", model, *target_args])
            draft = start("draft", ["--model", model, *draft_args, "--target", target])
            if orchestrator_args is not None:
                start("orchestrator", ["--target", target, "--draft", draft, *orchestrator_args])
            yield servers
        finally:
            for proc in reversed(servers.procs.values()):
                stop_service(proc)


@asynccontextmanager
async def process_stack(model: str, runtime: str | None = None, link=None, draft_model: str | None = None,
                        vocab_trim: str | None = None) -> AsyncIterator:
    """`edgespec target` and `edgespec draft` (embedded orchestrator) as two processes on
    127.0.0.1, one model thread each, as on a device and a server (no shared GIL: the draft can
    pre-draft while the target verifies); `link` becomes the draft's `--emulate-*` flags. Yields
    an AsyncClient; both processes are stopped on exit."""
    import asyncio

    from edgespec_client import AsyncClient
    draft_args = [*(["--model", draft_model] if draft_model else []), *(["--runtime", runtime] if runtime else []),
                  *(["--vocab-trim", vocab_trim] if vocab_trim else [])]
    if link is not None:
        draft_args += ["--emulate-rtt", str(link.rtt_ms), "--emulate-jitter", str(link.jitter_ms),
                       "--emulate-rate", str(link.rate_mbit)]
    with ExitStack() as stack:
        servers = await asyncio.to_thread(stack.enter_context, server_processes(model, draft_args))
        try:
            async with AsyncClient(servers.addresses["draft"], timeout=3600) as client:
                yield client
        finally:
            await asyncio.to_thread(stack.close)
