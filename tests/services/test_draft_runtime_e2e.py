"""Draft runtimes behind the services: a session that needs what the draft runtime cannot supply
is refused at open with INVALID_ARGUMENT naming the field — through the SDK endpoint and the
Drafter service alike — and leaves no session behind."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest

from edgespec.core.types import SamplingParams, SessionSpec
from edgespec.draft.config import DraftConfig
from edgespec.draft.serve import start_draft
from edgespec.models.draft_runtime import DraftCapabilities
from edgespec.orchestrator.config import OrchestratorConfig
from edgespec.rpc import codec
from edgespec.rpc.server import ServerOptions
from edgespec.target.config import TargetConfig
from edgespec.target.serve import start_target, stop_target
from edgespec.v1 import draft_pb2, draft_pb2_grpc
from edgespec_client import AsyncClient, InvalidArgumentError

FAST = ServerOptions(listen="127.0.0.1:0", grace_s=0.5)


async def _freed(live, within_s: float = 2.0) -> None:
    """Sessions are freed when their stream ends, which the server learns a moment after the client."""
    deadline = asyncio.get_running_loop().time() + within_s
    while live() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert live() == 0, "sessions left behind"


@pytest.fixture
async def blind_stack(tiny_target, tiny_draft):
    """Target + a draft whose runtime declares no hidden states."""
    blind = dataclasses.replace(tiny_draft, capabilities=DraftCapabilities(hidden_states=False))
    target_running, target_servicer = await start_target(TargetConfig(model="tiny", server=FAST), tiny_target)
    orch = OrchestratorConfig(target=target_running.address, tokenizer="tiny", server=FAST)
    draft = await start_draft(DraftConfig(model="tiny", orchestrator=orch, server=FAST), blind)
    yield target_servicer, draft
    await draft.running.stop()
    await draft.shutdown()
    await stop_target(target_running, target_servicer)


async def test_sdk_session_needing_hidden_states_is_refused_by_a_blind_runtime(blind_stack):
    target_servicer, draft = blind_stack
    async with AsyncClient(draft.running.address, timeout=30) as client:
        with pytest.raises(InvalidArgumentError, match="send_hidden_states"):
            await client.generate(prompt="hi", max_new_tokens=8, acceptance="semantic")
        ok = await client.generate(prompt="hi", max_new_tokens=8)  # lossless sessions still run
    assert len(ok.token_ids) == 8
    await _freed(lambda: len(draft.drafter.sessions) + len(target_servicer.sessions))


async def test_drafter_service_refuses_the_open_with_invalid_argument(blind_stack):
    _, draft = blind_stack
    spec = codec.spec_to_pb(SessionSpec(prompt_ids=(3, 89, 87), params=SamplingParams(), acceptance="semantic",
                                        max_new_tokens=8, send_hidden_states=True,
                                        draft_hidden_size=draft.drafter.draft.hidden_size))
    async with grpc.aio.insecure_channel(draft.running.address) as channel:
        call = draft_pb2_grpc.DrafterStub(channel).Session(timeout=30)
        await call.write(draft_pb2.DrafterRequest(open=spec))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call.read()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "send_hidden_states" in info.value.details()
    await _freed(lambda: len(draft.drafter.sessions))
