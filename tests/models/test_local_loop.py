"""The core loop in single-process mode (LocalDrafter + LocalVerifier) and mixed with a
RemoteVerifier over gRPC: same function, same greedy output as target-only decoding; hidden
states travel as float16 [k, d] when the session asks; KV rollback keeps passes = 1 + rounds."""

from __future__ import annotations

import grpc
import pytest

from edgespec.bench.baselines import target_only
from edgespec.core.draft_length import FixedK
from edgespec.core.loop import generate
from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.stats import SpecDecodeStats
from edgespec.core.types import DraftPlan, SamplingParams, SessionSpec
from edgespec.models.local_drafter import LocalDrafter
from edgespec.models.local_verifier import LocalVerifier
from edgespec.models.draft_runtime import torch_draft
from edgespec.models.presets import load_model
from edgespec.rpc.remote import RemoteVerifier
from edgespec.rpc.server import ServerOptions
from edgespec.target.config import TargetConfig
from edgespec.target.serve import start_target

PROMPT = [3, 89, 87, 73, 86, 203, 76, 77, 4, 203, 40, 41]


@pytest.fixture(scope="module")
def pair():
    return load_model("tiny", "target"), load_model("tiny", "draft")


async def _run(drafter, verifier, k: int, n: int, eos=()) -> tuple[list[int], SpecDecodeStats]:
    stats, tokens = SpecDecodeStats(), []
    async for step in generate(drafter, verifier, FixedK(k), n, eos):
        stats.observe(step)
        tokens.extend(step.tokens)
    return tokens, stats


@pytest.mark.parametrize("k", [1, 4, 32])
async def test_single_process_loop_matches_target_greedy(pair, k):
    target, draft = pair
    spec = ResolvedSpec.of(SessionSpec(prompt_ids=tuple(PROMPT), params=SamplingParams(), acceptance="exact",
                                       max_new_tokens=50))
    verifier = LocalVerifier(target.model, target.vocab_size, spec)
    drafter = LocalDrafter(torch_draft(draft), spec)
    await verifier.prefill()
    await drafter.prefill()
    tokens, stats = await _run(drafter, verifier, k, 50, target.eos_token_ids)
    assert tokens == target_only(target.model, PROMPT, 50, target.eos_token_ids).token_ids
    assert stats.target_forward_passes == 1 + stats.rounds
    assert verifier.cache_len <= len(verifier.tokens)  # rolled back to the committed length


async def test_hidden_states_cross_the_wire_and_loop_is_transport_agnostic(pair):
    target, draft = pair
    running, servicer = await start_target(TargetConfig(model="tiny", server=ServerOptions()), target)
    spec = ResolvedSpec.of(SessionSpec(prompt_ids=tuple(PROMPT), params=SamplingParams(), acceptance="exact",
                                       max_new_tokens=30, send_hidden_states=True,
                                       draft_hidden_size=draft.hidden_size))
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            verifier = await RemoteVerifier.open(channel, spec)
            drafter = LocalDrafter(torch_draft(draft), spec)
            await drafter.prefill()
            proposal = await drafter.propose(DraftPlan(k=3))
            assert proposal.hidden_states.shape == (3, draft.hidden_size)
            assert str(proposal.hidden_states.dtype) == "torch.float16"
            first = list((await drafter.commit(await verifier.verify(proposal))).tokens)
            tokens, stats = await _run(drafter, verifier, 3, 30 - len(first), target.eos_token_ids)
            await verifier.close()
    finally:
        await running.stop()
        await servicer.shutdown()
    reference = target_only(target.model, PROMPT, 30, target.eos_token_ids).token_ids
    assert first + tokens == reference[: len(first) + len(tokens)]  # the loop continues round 0 exactly
    assert stats.bytes_up > 3 * draft.hidden_size * 2  # fp16 hidden states were uploaded
