"""Tests of `edgespec.models.presets`: the `tiny` pair in depth, spec errors, and one slow
SmolLM2 check (uses/creates the converted cache under the user cache dir).

They do NOT test decoding or speculation, only what `load_model` / `load_tokenizer` return.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgespec.models import loading
from edgespec.models.presets import PRESETS, LoadedModel, load_model, load_tokenizer


@pytest.fixture(scope="module")
def tiny_pair() -> tuple[LoadedModel, LoadedModel]:
    return load_model("tiny", "target"), load_model("tiny", "draft")


def _random_contexts(tokenizer_size: int, batch: int = 16, length: int = 48) -> torch.Tensor:
    gen = torch.Generator().manual_seed(7)
    return torch.randint(5, tokenizer_size, (batch, length), generator=gen)


def _logits(loaded: LoadedModel, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return loaded.model(ids).logits


def test_registry_names() -> None:
    assert {"tiny", "smollm2"} <= set(PRESETS)


def test_tiny_shapes_and_flags(tiny_pair: tuple[LoadedModel, LoadedModel]) -> None:
    for loaded in tiny_pair:
        ids = _random_contexts(len(loaded.tokenizer), batch=2, length=5)
        logits = _logits(loaded, ids)
        assert logits.shape == (2, 5, loaded.vocab_size)
        assert loaded.vocab_size >= len(loaded.tokenizer)
        assert loaded.hidden_size == loaded.model.config.hidden_size
        assert not loaded.model.training
        assert not any(p.requires_grad for p in loaded.model.parameters())
        assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
        assert loaded.tokenizer.eos_token_id in loaded.eos_token_ids
        assert all(0 <= i < len(loaded.tokenizer) for i in loaded.eos_token_ids)
        assert loaded.model.generation_config.pad_token_id == loaded.tokenizer.pad_token_id
        assert "tiny" in loaded.name


def test_tiny_is_deterministic_and_keeps_global_rng(tiny_pair) -> None:
    target, _ = tiny_pair
    state = torch.random.get_rng_state()
    again = load_model("tiny", "target")
    assert torch.equal(state, torch.random.get_rng_state())
    ids = _random_contexts(len(target.tokenizer), batch=2, length=8)
    assert torch.equal(_logits(target, ids), _logits(again, ids))


def test_tiny_logits_are_peaked(tiny_pair) -> None:
    target, _ = tiny_pair
    probs = _logits(target, _random_contexts(len(target.tokenizer))).softmax(-1)
    assert probs.max(-1).values.mean() > 10 / target.vocab_size  # far from uniform


def test_tiny_draft_agrees_partially(tiny_pair) -> None:
    target, draft = tiny_pair
    ids = _random_contexts(len(target.tokenizer))
    target_logits, draft_logits = _logits(target, ids), _logits(draft, ids)
    assert not torch.equal(target_logits, draft_logits)
    agreement = (target_logits.argmax(-1) == draft_logits.argmax(-1)).float().mean().item()
    assert 0.4 <= agreement <= 0.9, agreement


def test_tiny_chat_template_and_round_trip() -> None:
    tokenizer = load_tokenizer("tiny")
    encoded = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=True
    )
    ids = encoded["input_ids"] if not isinstance(encoded, list) else encoded
    text = tokenizer.decode(ids)
    assert text.startswith("<|im_start|>user\nhi<|im_end|>")
    assert text.endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(tokenizer.encode("héllo wörld ✓")) == "héllo wörld ✓"


def test_unknown_spec_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="no-such-model"):
        load_model("no-such-model", "target")
    with pytest.raises(ValueError, match="no-such-model"):
        load_tokenizer("no-such-model")


def test_missing_gguf_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "absent.gguf"
    with pytest.raises(FileNotFoundError, match="absent.gguf"):
        load_model(str(missing), "draft")


def test_bad_dtype_and_role_fail_before_loading() -> None:
    with pytest.raises(ValueError, match="float8"):
        load_model("tiny", "target", dtype="float8")
    with pytest.raises(ValueError, match="role"):
        load_model("tiny", "verifier")  # type: ignore[arg-type]


def test_atomic_directory_keeps_the_first_writer(tmp_path: Path) -> None:
    final = tmp_path / "cache"
    loading.atomic_directory(final, lambda d: (d / "who").write_text("first"))
    loading.atomic_directory(final, lambda d: (d / "who").write_text("second"))
    assert (final / "who").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]  # no temp dirs left behind


def test_cache_root_honours_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGESPEC_CACHE_DIR", str(tmp_path / "x"))
    assert loading.cache_root() == tmp_path / "x"
    monkeypatch.delenv("EDGESPEC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert loading.cache_root() == tmp_path / "edgespec"


@pytest.mark.slow
def test_smollm2_target_and_int8_draft() -> None:
    target, draft = load_model("smollm2", "target"), load_model("smollm2", "draft")
    assert "int8" in draft.name
    assert target.vocab_size == draft.vocab_size == 49152
    assert target.tokenizer.convert_tokens_to_ids("<|im_end|>") in target.eos_token_ids
    head = target.model.get_output_embeddings().weight
    assert head.data_ptr() == target.model.get_input_embeddings().weight.data_ptr()  # still tied
    messages = [{"role": "user", "content": "Count from 1 to 10: 1, 2, 3, 4,"}]
    prompt = target.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt"
    )["input_ids"]
    continuation = target.tokenizer("1, 2, 3, 4, 5, 6, ", return_tensors="pt")["input_ids"]
    ids = torch.cat([prompt, continuation], dim=1)
    target_logits, draft_logits = _logits(target, ids), _logits(draft, ids)
    assert target_logits.shape == (1, ids.shape[1], 49152)
    assert target_logits[0, -1].argmax() == draft_logits[0, -1].argmax()
    assert target.tokenizer.decode(target_logits[0, -1].argmax()) == "7"
