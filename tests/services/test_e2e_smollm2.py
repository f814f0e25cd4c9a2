"""The real bundled pair (SmolLM2-135M-Instruct fp32 target, int8-layer draft) over real gRPC:
greedy output equals target-only greedy decoding, and rejection sampling over the full 49k
vocabulary (dense residual path) completes with one target pass per round."""

from __future__ import annotations

import pytest

from edgespec.bench.baselines import target_only
from edgespec.draft.config import DraftConfig
from edgespec.draft.serve import start_draft
from edgespec.models.draft_runtime import load_draft
from edgespec.models.presets import load_model
from edgespec.models.prompting import encode_prompt
from edgespec.orchestrator.config import OrchestratorConfig
from edgespec.rpc.server import ServerOptions
from edgespec.target.config import TargetConfig
from edgespec.target.serve import start_target, stop_target
from edgespec_client import AsyncClient

pytestmark = pytest.mark.slow
PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.", "List three prime numbers."]
NEW_TOKENS = 24
FAST = ServerOptions(listen="127.0.0.1:0", grace_s=0.5)


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2", "target"), load_draft("smollm2")


@pytest.fixture
async def smollm2_client(smollm2):
    target, draft = smollm2
    target_running, target_servicer = await start_target(TargetConfig(server=FAST), target)
    orch = OrchestratorConfig(target=target_running.address, server=FAST)
    draft_server = await start_draft(DraftConfig(orchestrator=orch, server=FAST), draft)
    async with AsyncClient(draft_server.running.address, timeout=600) as client:
        yield client
    await draft_server.running.stop()
    await draft_server.shutdown()
    await stop_target(target_running, target_servicer)


async def test_smollm2_exact_equals_target_greedy(smollm2, smollm2_client):
    target, draft = smollm2
    assert draft.runtime == "llamacpp", "the smollm2 preset drafts on llama.cpp"
    for prompt in PROMPTS:
        result = await smollm2_client.generate(prompt, max_new_tokens=NEW_TOKENS, k=3)
        assert list(result.prompt_token_ids) == encode_prompt(target.tokenizer, prompt)
        reference = target_only(target.model, list(result.prompt_token_ids), NEW_TOKENS, target.eos_token_ids)
        assert list(result.token_ids) == reference.token_ids
        assert result.stats.target_forward_passes == 1 + result.stats.rounds
        assert result.text.strip()


async def test_smollm2_rejection_sampling(smollm2_client):
    result = await smollm2_client.generate(PROMPTS[1], max_new_tokens=NEW_TOKENS, temperature=0.8,
                                           top_p=0.95, seed=7, k=3)
    assert result.acceptance == "rejection" and result.lossless
    assert 0 < len(result.token_ids) <= NEW_TOKENS
    assert result.stats.target_forward_passes == 1 + result.stats.rounds
    assert result.stats.accepted_tokens > 0


async def test_llamacpp_hidden_states_reach_the_semantic_rule(smollm2, smollm2_client):
    """The draft's fp16 hidden states (llama.cpp embeddings, d = 576) cross the wire and the target's
    semantic rule reads them (a wrong size or dtype would be INVALID_ARGUMENT)."""
    _, draft = smollm2
    result = await smollm2_client.generate(PROMPTS[0], max_new_tokens=NEW_TOKENS, k=3, acceptance="semantic")
    assert result.acceptance == "semantic" and not result.lossless
    assert len(result.token_ids) > 0 and result.stats.accepted_tokens > 0
    per_round = (result.stats.bytes_up - result.stats.rounds * 16) / max(result.stats.drafted_tokens, 1)
    assert per_round > draft.hidden_size * 2, "each drafted token carries d fp16 values up the wire"
