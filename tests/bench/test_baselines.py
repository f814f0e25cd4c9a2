"""Tests for the bench prompt set and the HF baselines (tiny random Llama models, CPU, fast).

Not a benchmark: timings are not checked, only token parity and target forward-pass counts.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from edgespec.bench.baselines import BaselineResult, assisted, target_only
from edgespec.bench.prompts import CATEGORIES, BenchPrompt, load_prompts

VOCAB = 300
EOS = (VOCAB - 1,)


def _tiny_llama(seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=EOS[0],
        pad_token_id=0,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module", autouse=True)
def _single_thread() -> Iterator[None]:
    """Tiny matmuls: one intra-op thread avoids spin-wait slowdowns (30x) on a busy 2-core box."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def target() -> LlamaForCausalLM:
    return _tiny_llama(seed=0)


@pytest.fixture(scope="module")
def noisy_draft(target: LlamaForCausalLM) -> LlamaForCausalLM:
    """Target weights plus small seeded noise: agrees with the target on some tokens, not all."""
    draft = copy.deepcopy(target)
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for param in draft.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * 0.005)
    return draft.eval()


@pytest.fixture(scope="module")
def exact_draft(target: LlamaForCausalLM) -> LlamaForCausalLM:
    return copy.deepcopy(target).eval()


def _random_prompts(n: int, seed: int = 7) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 20, (n,), generator=gen).tolist()
    return [torch.randint(2, VOCAB - 1, (length,), generator=gen).tolist() for length in lengths]


# --- prompts ---------------------------------------------------------------------------------


def test_bundled_prompts_cover_all_categories() -> None:
    prompts = load_prompts()
    assert len(prompts) >= 48
    assert all(isinstance(p, BenchPrompt) for p in prompts)
    counts = Counter(p.category for p in prompts)
    assert set(counts) == set(CATEGORIES) and len(CATEGORIES) == 6
    assert all(counts[c] >= 8 for c in CATEGORIES), counts
    assert len({p.id for p in prompts}) == len(prompts)
    assert all(p.prompt.strip() for p in prompts)


def test_per_category_takes_first_n_in_category_order() -> None:
    full = load_prompts()
    subset = load_prompts(per_category=2)
    assert len(subset) == 2 * len(CATEGORIES)
    assert [p.category for p in subset] == [c for c in CATEGORIES for _ in range(2)]
    for category in CATEGORIES:
        expected = [p for p in full if p.category == category][:2]
        assert [p for p in subset if p.category == category] == expected


def test_malformed_line_names_line_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"id": "chat-01", "category": "chat", "prompt": "hi"}\n'
        '{"id": "qa-01", "category": "qa", "prompt": "why?"}\n'
        '{"id": "qa-02", "category": "qa", "prompt": \n',
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=r"line 3"):
        load_prompts(path)


def test_missing_field_and_unknown_category_rejected(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"id": "chat-01", "category": "chat"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 1.*prompt"):
        load_prompts(missing)
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text('\n{"id": "x-01", "category": "poetry", "prompt": "a poem"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2.*poetry"):
        load_prompts(unknown)


# --- baselines -------------------------------------------------------------------------------


def test_target_only_counts_one_forward_per_token(target: LlamaForCausalLM) -> None:
    for prompt_ids in _random_prompts(3):
        result = target_only(target, prompt_ids, max_new_tokens=12, eos_token_ids=EOS)
        assert isinstance(result, BaselineResult)
        assert 1 <= len(result.token_ids) <= 12
        assert result.target_forward_passes == len(result.token_ids)
        assert result.seconds > 0


def test_assisted_matches_target_only_greedy(target: LlamaForCausalLM, noisy_draft: LlamaForCausalLM) -> None:
    k = 4
    passes: list[int] = []
    for prompt_ids in _random_prompts(4):
        base = target_only(target, prompt_ids, max_new_tokens=16, eos_token_ids=EOS)
        spec = assisted(target, noisy_draft, prompt_ids, max_new_tokens=16, eos_token_ids=EOS,
                        num_assistant_tokens=k)
        assert spec.token_ids == base.token_ids
        assert spec.target_forward_passes <= len(spec.token_ids)
        passes.append(spec.target_forward_passes)
    # the draft is partly right: some drafts accepted, some rejected (both code paths exercised)
    assert min(passes) < 16, f"noisy draft never got a token accepted: {passes}"
    assert max(passes) > -(-16 // (k + 1)), f"noisy draft never got a token rejected: {passes}"


def test_assisted_with_exact_draft_saves_target_passes(
    target: LlamaForCausalLM, exact_draft: LlamaForCausalLM
) -> None:
    k, n = 4, 20
    for prompt_ids in _random_prompts(2, seed=11):
        base = target_only(target, prompt_ids, max_new_tokens=n, eos_token_ids=EOS)
        spec = assisted(target, exact_draft, prompt_ids, max_new_tokens=n, eos_token_ids=EOS,
                        num_assistant_tokens=k)
        assert spec.token_ids == base.token_ids
        assert spec.target_forward_passes < len(spec.token_ids)
        # every round accepts all k drafts plus one bonus token
        assert spec.target_forward_passes <= -(-len(spec.token_ids) // (k + 1)) + 1


def test_assisted_leaves_draft_generation_config_untouched(
    target: LlamaForCausalLM, exact_draft: LlamaForCausalLM
) -> None:
    before_obj = exact_draft.generation_config
    before = before_obj.to_dict()
    assisted(target, exact_draft, [5, 6, 7], max_new_tokens=6, eos_token_ids=EOS, num_assistant_tokens=3)
    assert exact_draft.generation_config is before_obj
    assert exact_draft.generation_config.to_dict() == before


def test_assisted_rejects_same_module_as_draft(target: LlamaForCausalLM) -> None:
    with pytest.raises(ValueError):
        assisted(target, target, [5, 6], max_new_tokens=4, eos_token_ids=EOS, num_assistant_tokens=2)
