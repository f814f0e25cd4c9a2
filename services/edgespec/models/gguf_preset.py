"""GgufPreset: a preset whose weights are a GGUF shipped by a pip package (`smollm2`, `gemma3`).

The GGUF is dequantized once (seconds to a minute) into a safetensors + tokenizer cache under the
user cache dir, then loaded from there: target = fp32, draft = the same weights with int8
dynamic-quantized decoder layers; for the llama.cpp draft runtime the GGUF itself, re-quantized
once to Q8_0 (`draft_gguf`). It knows no particular model (see `smollm2.py`, `gemma3.py`),
does NOT choose between specs (`presets.py`) and never touches the network.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from edgespec.models.loading import atomic_directory, cache_root, finalize, load_gguf

DRAFT_QUANT = "q8_0"  # the llama.cpp draft's format: fastest on x86 at 97.5% top-1 agreement (README)


@dataclass(frozen=True)
class GgufPreset:
    """Where a preset's GGUF comes from and how its converted cache is named."""

    name: str                        # display name and cache dir stem, e.g. "gemma-3-270m"
    cache_format: int                # bump to invalidate caches written by an older converter
    locate: Callable[[Path], Path]   # scratch dir -> the GGUF file (may write it into scratch)
    chat_template: str | None = None  # replaces the GGUF's on every load (None: the GGUF must have one)

    def cache_dir(self) -> Path:
        return cache_root() / f"{self.name}-v{self.cache_format}"

    def ensure_cache(self) -> Path:
        """The converted cache dir, converting the GGUF first if needed (race-safe)."""
        return atomic_directory(self.cache_dir(), self._convert_into)

    def draft_gguf(self, quant: str = DRAFT_QUANT) -> Path:
        """The GGUF the llama.cpp draft runs: the shipped file re-quantized to `quant`, cached."""
        from edgespec.models.gguf_quant import quantize
        dest = cache_root() / f"{self.name}-{quant}.gguf"
        if dest.is_file():
            return dest
        with tempfile.TemporaryDirectory(prefix="edgespec-gguf-") as scratch:
            return quantize(self.locate(Path(scratch)), dest, quant)

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        """From the cache when present (fast), else from the GGUF metadata (no weights converted)."""
        directory = self.cache_dir()
        if directory.is_dir():
            return self._with_chat_template(AutoTokenizer.from_pretrained(directory, local_files_only=True),
                                            directory)
        with tempfile.TemporaryDirectory(prefix="edgespec-gguf-") as scratch:
            source = self.locate(Path(scratch))
            tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
            return self._with_chat_template(tokenizer, source)

    def build_model(self, role: Literal["draft", "target"], dtype: str, device: str
                    ) -> tuple[torch.nn.Module, PreTrainedTokenizerBase, str]:
        """(model, tokenizer, display name) for the target or the int8 draft."""
        directory = self.ensure_cache()
        tokenizer = self.load_tokenizer()
        model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, dtype=torch.float32)
        if role == "target":
            finalize(model, tokenizer, dtype=dtype, device=device)
            return model, tokenizer, f"{self.name} ({dtype})"
        if device != "cpu" or dtype != "float32":
            finalize(model, tokenizer, dtype=dtype, device=device)
            return model, tokenizer, f"{self.name} ({dtype}, int8 skipped: dynamic quantization needs cpu float32)"
        finalize(model, tokenizer, dtype=None, device=None)
        quantize_decoder_layers(model)
        return model, tokenizer, f"{self.name} (int8 decoder layers)"

    def _with_chat_template(self, tokenizer: PreTrainedTokenizerBase, source: Path) -> PreTrainedTokenizerBase:
        if self.chat_template is not None:
            tokenizer.chat_template = self.chat_template
        elif tokenizer.chat_template is None:
            raise RuntimeError(f"{source} carries no chat template")
        return tokenizer

    def _convert_into(self, directory: Path) -> None:
        """Dequantize the GGUF and save model + tokenizer (+ a provenance note) into `directory`."""
        with tempfile.TemporaryDirectory(prefix=".gguf-", dir=directory) as scratch:
            source = self.locate(Path(scratch))
            model, tokenizer = load_gguf(str(source))
            self._with_chat_template(tokenizer, source)
            model.save_pretrained(directory, safe_serialization=True)
            tokenizer.save_pretrained(directory)
        note = {"source": str(source), "format": self.cache_format, "dtype": "float32"}
        (directory / "edgespec.json").write_text(json.dumps(note, indent=2))


def quantize_decoder_layers(model: torch.nn.Module) -> torch.nn.Module:
    """int8 dynamic quantization of every Linear in the decoder layers (lm_head stays fp32)."""
    with warnings.catch_warnings():  # torch 2.13 flags the (still working) eager int8 API
        warnings.filterwarnings("ignore", message=r".*(torch\.ao\.quantization|quantize_per).*")
        torch.ao.quantization.quantize_dynamic(
            model.model.layers, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
        )
    return model
