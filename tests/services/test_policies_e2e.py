"""Draft-length policies over real gRPC servers (tiny preset): greedy parity with target-only for
every policy, with proactive drafting, and in server-only mode — embedded and through the
standalone orchestrator (entropy stops and pre-drafting cross the Drafter wire); stats show the
mode; bad policy fields are INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import pytest

from edgespec.bench.baselines import target_only
from edgespec_client import AsyncClient, InvalidArgumentError

PROMPTS = ["hello there", "the quick brown fox"]
POLICIES = [
    dict(draft_length="heuristic", k=2),
    dict(draft_length="adaedl", k_max=8),
    dict(draft_length="svip", k_max=6),
    dict(draft_length="auto", k=3, proactive=True, early_stop="svip"),
    dict(draft_length="fixed", k=3, proactive=True),
    dict(draft_length="server"),
]


def _reference(model, prompt_ids, n):
    return target_only(model.model, list(prompt_ids), n, model.eos_token_ids).token_ids


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: "+".join(map(str, p.values())))
async def test_policies_keep_greedy_parity_embedded_and_standalone(stack, client, standalone_factory,
                                                                   tiny_target, policy):
    address = await standalone_factory(stack)
    async with AsyncClient(address, timeout=60.0) as remote:
        for prompt in PROMPTS:
            for result in (await client.generate(prompt, max_new_tokens=40, **policy),
                           await remote.generate(prompt, max_new_tokens=40, **policy)):
                assert list(result.token_ids) == _reference(tiny_target, result.prompt_token_ids, 40)
                s = result.stats
                assert s.target_forward_passes == 1 + s.rounds + s.server_tokens
                if policy["draft_length"] == "server":
                    assert s.server_tokens == len(result.token_ids) and s.rounds == 0
                elif policy["draft_length"] != "auto":  # auto may rightly pick server-only on tiny
                    assert s.rounds > 0 and s.server_tokens == 0


async def test_server_only_mode_streams_token_by_token(client):
    stream = client.stream(PROMPTS[0], max_new_tokens=24, draft_length="server")
    chunks = [chunk async for chunk in stream]
    assert all(len(c.token_ids) == 1 for c in chunks)
    assert stream.result.stats.server_tokens == len(chunks) == len(stream.result.token_ids)


@pytest.mark.parametrize("field, value", [("k_max", 40), ("draft_length", "nope"), ("early_stop", "maybe"),
                                          ("k", 33)])
async def test_bad_policy_fields_are_invalid_argument(client, field, value):
    policy = {"draft_length": "auto", field: value}
    with pytest.raises(InvalidArgumentError, match=field):
        await client.generate(PROMPTS[0], max_new_tokens=8, **policy)
