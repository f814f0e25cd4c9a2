"""Model specs -> loaded draft/target models: `PRESETS`, `load_model`, `load_tokenizer`.

A spec is a preset name ("tiny", "smollm2", "gemma3"), else a `.gguf` path, else an HF local directory or
hub id. Presets never touch the network. This module does NOT run models (no decoding, no
speculation) and does NOT know preset internals (see `tiny.py`, `smollm2.py`, `gemma3.py`, `vocabtrim.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from transformers import PreTrainedTokenizerBase

from edgespec.models import gemma3, loading, smollm2, tiny
from edgespec.models.gguf_preset import GgufPreset
from edgespec.models.vocabtrim import apply_vocab_trim

Role = Literal["draft", "target"]
Built = tuple[torch.nn.Module, PreTrainedTokenizerBase, str]  # finalized model, tokenizer, name


@dataclass(frozen=True)
class LoadedModel:
    name: str  # e.g. "smollm2-135m-instruct (int8 decoder layers)"
    model: torch.nn.Module  # a transformers PreTrainedModel in eval mode, requires_grad False
    tokenizer: PreTrainedTokenizerBase
    vocab_size: int  # last dim of the logits (rows of lm_head)
    hidden_size: int
    eos_token_ids: tuple[int, ...]  # every token id that ends generation


@dataclass(frozen=True)
class Preset:
    description: str
    build: Callable[[Role, str, str], Built]  # (role, dtype, device) -> Built
    tokenizer: Callable[[], PreTrainedTokenizerBase]
    extra_eos_tokens: tuple[str, ...] = ()
    draft_runtime: str = "torch"                      # the draft's default runtime (`draft_runtime.py`)
    gguf: GgufPreset | None = None                    # where a llama.cpp draft's GGUF comes from


def _build_tiny(role: Role, dtype: str, device: str) -> Built:
    tokenizer = tiny.build_tokenizer()
    model = loading.finalize(
        tiny.build_model(role, tokenizer), tokenizer, dtype=dtype, device=device
    )
    kind = "target, random init" if role == "target" else "draft, target + noise"
    return model, tokenizer, f"tiny-llama ({kind}, {dtype})"


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        description="random-init 2-layer Llama pair for fast tests (draft = target + noise)",
        build=_build_tiny,
        tokenizer=tiny.build_tokenizer,
        extra_eos_tokens=("</s>",),
    ),
    "smollm2": Preset(
        description="SmolLM2-135M-Instruct: fp32 target; draft on llama.cpp (Q8_0) or torch (int8 dynamic)",
        build=smollm2.SMOLLM2.build_model,
        tokenizer=smollm2.SMOLLM2.load_tokenizer,
        extra_eos_tokens=smollm2.EXTRA_EOS_TOKENS,
        draft_runtime="llamacpp",
        gguf=smollm2.SMOLLM2,
    ),
    "gemma3": Preset(
        description="Gemma-3-270M base (262k vocab): fp32 target; draft on llama.cpp (Q8_0) or torch (int8)",
        build=gemma3.GEMMA3.build_model,
        tokenizer=gemma3.GEMMA3.load_tokenizer,
        extra_eos_tokens=gemma3.EXTRA_EOS_TOKENS,
        draft_runtime="llamacpp",
        gguf=gemma3.GEMMA3,
    ),
}


def _load_non_preset(spec: str, dtype: str, device: str) -> Built:
    load = loading.load_gguf if spec.endswith(".gguf") else loading.load_hf
    model, tokenizer = load(spec)
    return loading.finalize(model, tokenizer, dtype=dtype, device=device), tokenizer, spec


def load_model(
    spec: str, role: Role, *, dtype: str = "float32", device: str = "cpu", vocab_trim: str | None = None
) -> LoadedModel:
    """The `role` model of a preset, or the model at `spec` (role ignored), ready for inference;
    a draft's LM head is cut to the trim file `vocab_trim` when given (see `vocabtrim.py`)."""
    if role not in ("draft", "target"):
        raise ValueError(f"role must be 'draft' or 'target', got {role!r}")
    if vocab_trim is not None and role != "draft":
        raise ValueError("vocab_trim: only the draft's head may be trimmed (the target defines p)")
    loading.resolve_dtype(dtype)  # fail on a bad dtype before loading anything
    preset = PRESETS.get(spec)
    if preset is not None:
        model, tokenizer, name = preset.build(role, dtype, device)
        extra_eos = preset.extra_eos_tokens
    else:
        (model, tokenizer, name), extra_eos = _load_non_preset(spec, dtype, device), ()
    if vocab_trim is not None:
        head = apply_vocab_trim(model, vocab_trim)
        name = f"{name}, vocab trim {head.kept_ids.numel()}/{head.out_features}"
    return LoadedModel(
        name=name,
        model=model,
        tokenizer=tokenizer,
        vocab_size=loading.output_rows(model),
        hidden_size=int(model.config.hidden_size),
        eos_token_ids=loading.eos_token_ids(model, tokenizer, extra_eos),
    )


def load_tokenizer(spec: str) -> PreTrainedTokenizerBase:
    """The tokenizer of `spec` without loading any weights."""
    preset = PRESETS.get(spec)
    return preset.tokenizer() if preset is not None else loading.load_spec_tokenizer(spec)


def stop_token_ids(spec: str, tokenizer: PreTrainedTokenizerBase) -> tuple[int, ...]:
    """The ids that end generation for `spec`, from its tokenizer alone (no weights loaded)."""
    preset = PRESETS.get(spec)
    return loading.eos_token_ids(None, tokenizer, preset.extra_eos_tokens if preset else ())
