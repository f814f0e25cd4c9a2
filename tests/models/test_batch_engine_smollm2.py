"""Greedy parity of the batched engine on the real SmolLM2-135M target: four prompts of different
lengths generate target-only (one token per round) in shared steps while a fifth session keeps
speculating junk blocks that are rejected and rolled back; each output equals HF target-only
greedy decoding, or else the first differing position is a numerical tie of the target (top-2
logit margin < 1e-4), the only way batched float rounding may flip a greedy token."""

from __future__ import annotations

import asyncio

import pytest
import torch

from edgespec.bench.baselines import target_only
from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.types import Proposal, SamplingParams, SessionSpec
from edgespec.models.batch_engine import BatchEngine
from edgespec.models.engine_config import EngineConfig
from edgespec.models.local_verifier import LocalVerifier
from edgespec.models.presets import load_model
from edgespec.models.prompting import encode_prompt

pytestmark = pytest.mark.slow
PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.", "List three prime numbers.",
           "Explain in two sentences why the sky is blue, and mention Rayleigh scattering."]
NEW = 20


def _spec(prompt_ids) -> ResolvedSpec:
    return ResolvedSpec.of(SessionSpec(prompt_ids=tuple(prompt_ids), params=SamplingParams(),
                                       acceptance="exact", max_new_tokens=NEW + 40))


async def _greedy(verifier: LocalVerifier) -> list[int]:
    return [v.token async for v in verifier.autoregress(Proposal(round=0, tokens=()), NEW)]


async def _junk(verifier: LocalVerifier) -> None:
    """Blocks of 4 unlikely drafts: mostly rejected, so the slot rolls back every round."""
    for r in range(NEW // 2):
        await verifier.verify(Proposal(round=r, tokens=(17, 17, 17, 17)))


def _margin(model, ids: list[int]) -> float:
    with torch.inference_mode():
        top2 = model(input_ids=torch.tensor([ids])).logits[0, -1].float().topk(2).values
    return float(top2[0] - top2[1])


async def test_batched_greedy_equals_target_only_up_to_numerical_ties():
    target = load_model("smollm2", "target")
    engine = BatchEngine(target.model, EngineConfig(kv_cache_tokens=4096))
    ids = [encode_prompt(target.tokenizer, p) for p in PROMPTS]
    sessions = [LocalVerifier(target.model, target.vocab_size, _spec(i), engine=engine) for i in ids]
    junk = LocalVerifier(target.model, target.vocab_size, _spec(ids[0]), engine=engine)
    await asyncio.gather(*(s.prefill() for s in [*sessions, junk]))
    outputs, _ = await asyncio.gather(asyncio.gather(*(_greedy(s) for s in sessions)), _junk(junk))
    assert max(r.sessions for r in engine.steps) == len(sessions) + 1      # everyone in one forward
    equal = 0
    for prompt_ids, got in zip(ids, outputs):
        want = target_only(target.model, prompt_ids, NEW, target.eos_token_ids).token_ids
        got = got[:len(want)]                                             # the reference stops at EOS
        if got == want:
            equal += 1
            continue
        first = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
        assert _margin(target.model, prompt_ids + want[:first]) < 1e-4, f"flip at {first} is not a tie"
    assert equal >= len(PROMPTS) - 1, f"parity {equal}/{len(PROMPTS)}"
    for s in [*sessions, junk]:
        await s.close()
    assert engine.pool.used == 0
    engine.close()
