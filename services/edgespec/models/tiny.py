"""The `tiny` preset: a random-initialised, Llama-architecture draft/target pair for fast tests.

Built offline from a config with fixed seeds (no downloads, well under a second); the draft is
the target plus seeded noise, so the two agree on the greedy token only part of the time.
It is NOT a language model: its outputs are meaningless, only their statistics are useful.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TinySpec:
    """Shape and seeds of the tiny pair (the defaults are the `tiny` preset)."""

    vocab_size: int = 320  # tokenizer has 261 tokens; rows above it are never tokenized
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    max_positions: int = 2048
    init_std: float = 0.3  # large on purpose: peaked, non-uniform next-token distributions
    target_seed: int = 1234
    draft_seed: int = 4321
    draft_noise: float = 0.03  # relative noise std per draft matrix; ~60% greedy agreement


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (5 specials + 256 bytes) with a ChatML-style chat template."""
    byte_alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for char in sorted(byte_alphabet):
        vocab[char] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _config(spec: TinySpec, tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=spec.vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_positions,
        initializer_range=spec.init_std,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _perturb(model: LlamaForCausalLM, noise: float, seed: int) -> None:
    """Add Gaussian noise with std `noise * weight.std()` to every matrix (norms left alone)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() < 2:
                continue
            scale = noise * float(param.std())
            param.add_(torch.randn(param.shape, generator=gen, dtype=param.dtype) * scale)


def build_model(
    role: Literal["draft", "target"],
    tokenizer: PreTrainedTokenizerFast,
    spec: TinySpec = TinySpec(),
) -> LlamaForCausalLM:
    """The fp32 target, or the draft (target weights + seeded noise); global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.target_seed)
        model = LlamaForCausalLM(_config(spec, tokenizer))
    if role == "draft":
        _perturb(model, spec.draft_noise, spec.draft_seed)
    return model.float()
