"""Fixtures: real gRPC target and draft (+ embedded orchestrator) servers on 127.0.0.1:0 over the
`tiny` preset, and an SDK client pointed at them; `spawn` starts them as real `edgespec` processes
(1 s keepalive, metrics on a port) for the tests that signal them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import sys
import urllib.request

import grpc
import pytest

from edgespec.draft.config import DraftConfig
from edgespec.draft.serve import start_draft
from edgespec.models.draft_runtime import torch_draft
from edgespec.models.presets import load_model
from edgespec.orchestrator import serve as orchestrator_serve
from edgespec.orchestrator.config import OrchestratorConfig
from edgespec.rpc.server import ServerOptions
from edgespec.target.config import TargetConfig
from edgespec.target.serve import start_target, stop_target
from edgespec.telemetry.runtime import Telemetry
from edgespec_client import AsyncClient

FAST = ServerOptions(listen="127.0.0.1:0", grace_s=0.5, keepalive_time_s=1.0, keepalive_timeout_s=1.0)


@pytest.fixture(scope="session")
def tiny_target():
    return load_model("tiny", "target")


@pytest.fixture(scope="session")
def tiny_draft():
    return torch_draft(load_model("tiny", "draft"))


@dataclasses.dataclass
class Stack:
    target_address: str
    draft_address: str
    target_servicer: object
    draft_server: object


@pytest.fixture
async def stack_factory(tiny_target, tiny_draft):
    """Start target + draft servers with optional config overrides; stops them afterwards."""
    started = []

    async def make(target_overrides: dict | None = None, orchestrator_overrides: dict | None = None,
                   draft_overrides: dict | None = None) -> Stack:
        target_cfg = TargetConfig(**{"model": "tiny", "server": FAST, **(target_overrides or {})})
        target_running, target_servicer = await start_target(target_cfg, tiny_target)
        orch = OrchestratorConfig(**{"target": target_running.address, "tokenizer": "tiny", "server": FAST,
                                     **(orchestrator_overrides or {})})
        draft = await start_draft(DraftConfig(**{"model": "tiny", "orchestrator": orch, "server": FAST,
                                                 **(draft_overrides or {})}), tiny_draft)
        started.append((target_running, target_servicer, draft))
        return Stack(target_running.address, draft.running.address, target_servicer, draft)

    yield make
    for target_running, target_servicer, draft in started:
        await draft.running.stop()
        await draft.shutdown()
        await stop_target(target_running, target_servicer)


@pytest.fixture
async def stack(stack_factory) -> Stack:
    return await stack_factory()


@pytest.fixture
async def client(stack):
    async with AsyncClient(stack.draft_address, timeout=60.0) as c:
        yield c


@pytest.fixture
async def target_channel(stack):
    async with grpc.aio.insecure_channel(stack.target_address) as channel:
        yield channel


@pytest.fixture
async def standalone_factory(monkeypatch):
    """Start standalone orchestrators (RemoteDrafter path); `endless` drops their stop tokens."""
    started = []

    async def make(stack, endless: bool = False) -> str:
        if endless:
            monkeypatch.setattr(orchestrator_serve, "stop_token_ids", lambda spec, tokenizer: ())
        config = OrchestratorConfig(target=stack.target_address, draft=stack.draft_address,
                                    tokenizer="tiny", server=FAST)
        telemetry = Telemetry()
        running, channels = await orchestrator_serve.start_orchestrator(config, telemetry)
        started.append((running, channels, telemetry))
        return running.address

    yield make
    for running, channels, telemetry in started:
        await running.stop()
        for channel in channels:
            await channel.close()
        telemetry.close()


KEEPALIVE = ["--keepalive-time", "1", "--keepalive-timeout", "1"]


class Process:
    """One edgespec server process: its address, metrics port, and signals."""

    def __init__(self, process: asyncio.subprocess.Process, address: str, metrics: int) -> None:
        self.process, self.address, self.metrics = process, address, metrics

    def metric(self, name: str, service: str) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5).read().decode()
        prefix = f'{name}{{service="{service}"}}'
        return float(next((line for line in text.splitlines() if line.startswith(prefix)), "0 0").split()[-1])

    def live(self, service: str) -> float:
        return self.metric("edgespec_live_sessions", service)

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)


@pytest.fixture
async def spawn(tmp_path, unused_tcp_port_factory):
    """Start `edgespec ARGS...` processes; each is killed (and continued) at the end."""
    started: list[Process] = []

    async def start(*args: str) -> Process:
        ready, metrics = tmp_path / f"{len(started)}.addr", unused_tcp_port_factory()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edgespec", *args, "--listen", "127.0.0.1:0", "--ready-file", str(ready),
            "--metrics-listen", f"127.0.0.1:{metrics}", *KEEPALIVE,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        started.append(Process(process, "", metrics))
        async with asyncio.timeout(120.0):
            while not ready.exists():
                if process.returncode is not None:
                    raise RuntimeError(f"edgespec {' '.join(args)} exited with {process.returncode}")
                await asyncio.sleep(0.05)
        started[-1].address = ready.read_text()
        return started[-1]

    yield start
    for p in started:
        with contextlib.suppress(ProcessLookupError):
            p.signal(signal.SIGCONT)
            p.process.kill()
        await p.process.wait()
