"""Hugging Face peers that `edgespec bench` compares against, run on the same target/draft models.

`target_only` is plain greedy `model.generate`; `assisted` is HF assisted generation (the draft as
`assistant_model`) with a constant draft length. Both are single-sequence, greedy and in-process;
this module is NOT edgespec's own decoder and does no tokenization, templating or reporting.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from transformers import GenerationConfig, PreTrainedModel


@dataclass(frozen=True)
class BaselineResult:
    """Outcome of one baseline generate call."""

    token_ids: list[int]  # generated ids only (prompt excluded), eos included if produced
    seconds: float  # wall time of the generate call
    target_forward_passes: int  # forward calls of the target model during generation (prefill included)


@dataclass
class _Counter:
    n: int = 0


@contextmanager
def _count_forwards(model: torch.nn.Module) -> Iterator[_Counter]:
    """Count top-level forward calls of `model` for the duration of the block."""
    counter = _Counter()

    def hook(_module: torch.nn.Module, _args: Any, _output: Any) -> None:
        counter.n += 1

    handle = model.register_forward_hook(hook)
    try:
        yield counter
    finally:
        handle.remove()


@contextmanager
def _assistant_settings(draft_model: PreTrainedModel, num_assistant_tokens: int) -> Iterator[None]:
    """Temporarily give the draft a generation_config with a constant draft length.

    In transformers 5.x the candidate generator reads `num_assistant_tokens`, its schedule and
    `assistant_confidence_threshold` from the *assistant's* generation_config (global default 0.4
    threshold would stop drafting early on low confidence, so it is disabled with 0.0). The caller's
    config object is restored untouched afterwards.
    """
    original = draft_model.generation_config
    patched = copy.deepcopy(original)
    patched.num_assistant_tokens = num_assistant_tokens
    patched.num_assistant_tokens_schedule = "constant"
    patched.assistant_confidence_threshold = 0.0
    draft_model.generation_config = patched
    try:
        yield
    finally:
        draft_model.generation_config = original


def _greedy_config(max_new_tokens: int, eos_token_ids: tuple[int, ...], **extra: Any) -> GenerationConfig:
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if not eos_token_ids:
        raise ValueError("eos_token_ids must name at least one token")
    return GenerationConfig(
        do_sample=False,
        num_beams=1,
        max_new_tokens=max_new_tokens,
        eos_token_id=list(eos_token_ids),
        pad_token_id=eos_token_ids[0],
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        use_cache=True,
        return_dict_in_generate=False,
        **extra,
    )


def _run_generate(target_model: PreTrainedModel, prompt_ids: list[int], config: GenerationConfig,
                  **generate_kwargs: Any) -> BaselineResult:
    if not prompt_ids:
        raise ValueError("prompt_ids must not be empty")
    input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=target_model.device)
    attention_mask = torch.ones_like(input_ids)
    with _count_forwards(target_model) as counter, torch.inference_mode():
        start = time.perf_counter()
        output = target_model.generate(
            input_ids=input_ids, attention_mask=attention_mask, generation_config=config, **generate_kwargs
        )
        seconds = time.perf_counter() - start
    generated = output[0, input_ids.shape[1]:].tolist()
    return BaselineResult(token_ids=generated, seconds=seconds, target_forward_passes=counter.n)


def target_only(target_model: PreTrainedModel, prompt_ids: list[int], max_new_tokens: int,
                eos_token_ids: tuple[int, ...]) -> BaselineResult:
    """Greedy autoregressive decoding with the target alone (HF `generate`, KV cache on)."""
    config = _greedy_config(max_new_tokens, eos_token_ids)
    return _run_generate(target_model, prompt_ids, config)


def assisted(target_model: PreTrainedModel, draft_model: PreTrainedModel, prompt_ids: list[int],
             max_new_tokens: int, eos_token_ids: tuple[int, ...], num_assistant_tokens: int) -> BaselineResult:
    """Greedy HF assisted generation: the draft proposes `num_assistant_tokens` per round (constant).

    Greedy assisted generation is lossless, so `token_ids` should equal `target_only`'s (up to
    floating-point ties). `draft_model` must be a distinct module from `target_model`, else the
    forward hook would also count draft passes.
    """
    if num_assistant_tokens < 1:
        raise ValueError(f"num_assistant_tokens must be >= 1, got {num_assistant_tokens}")
    if draft_model is target_model:
        raise ValueError("draft_model must be a distinct module from target_model (use a copy)")
    # Set on the main config too (harmless; some transformers versions read it from there).
    config = _greedy_config(
        max_new_tokens,
        eos_token_ids,
        num_assistant_tokens=num_assistant_tokens,
        num_assistant_tokens_schedule="constant",
        assistant_confidence_threshold=0.0,
    )
    with _assistant_settings(draft_model, num_assistant_tokens):
        return _run_generate(target_model, prompt_ids, config, assistant_model=draft_model)
