"""Generic loading helpers shared by the presets: dtype names, the user cache dir, atomic cache
writes, loading a `.gguf` file or an HF directory / hub id, and the final eval/no-grad touches.

It knows no particular model (see `tiny.py`, `smollm2.py`) and does NOT choose between specs
(that is `presets.load_model`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from types import MappingProxyType

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from edgespec.models.cpu_budget import cpu_budget

DTYPES = MappingProxyType(
    {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; expected one of {sorted(DTYPES)}") from None


def cache_root() -> Path:
    """`$EDGESPEC_CACHE_DIR`, else `$XDG_CACHE_HOME/edgespec`, else `~/.cache/edgespec`."""
    if explicit := os.environ.get("EDGESPEC_CACHE_DIR"):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "edgespec"


def atomic_directory(final: Path, write: Callable[[Path], None]) -> Path:
    """Create `final` by `write(tmp)` into a sibling temp dir, then rename it into place.

    If `final` already exists (or another process renames its copy first) theirs is kept and
    ours discarded: readers never see a half-written directory.
    """
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        write(tmp)
        os.rename(tmp, final)  # atomic; fails if a non-empty `final` appeared meanwhile
    except OSError:
        if not final.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _gguf_location(spec: str) -> Path:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"GGUF model file not found: {spec!r}")
    return path


def _hf_location(spec: str) -> str:
    if Path(spec).expanduser().is_dir():
        return str(Path(spec).expanduser())
    if _HUB_ID.match(spec):
        return spec
    raise ValueError(
        f"unknown model spec {spec!r}: not a preset, not a .gguf file, "
        "not a local model directory and not a hub id (owner/name)"
    )


def load_gguf(spec: str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """Dequantize a `.gguf` file into an fp32 transformers model (slow: ~seconds per 100M)."""
    path = _gguf_location(spec)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    )
    return _as_plain_model(model, path), tokenizer


def _as_plain_model(model: torch.nn.Module, source: Path) -> torch.nn.Module:
    """Forget the GGUF origin of a fully dequantized model, so it saves/casts like any other."""
    names = {type(module).__name__ for module in model.modules()}
    if packed := sorted(name for name in names if "gguf" in name.lower()):
        raise RuntimeError(f"{source}: weights left GGUF-packed ({packed}); expected dequantized")
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model


def load_hf(spec: str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """A local HF model directory or a hub id (which may download, unless HF_HUB_OFFLINE=1)."""
    location = _hf_location(spec)
    tokenizer = AutoTokenizer.from_pretrained(location)
    model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32)
    return model, tokenizer


def load_spec_tokenizer(spec: str) -> PreTrainedTokenizerBase:
    """Tokenizer only, for a `.gguf` path or an HF directory / hub id."""
    if spec.endswith(".gguf"):
        path = _gguf_location(spec)
        return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    return AutoTokenizer.from_pretrained(_hf_location(spec))


def eos_token_ids(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, extra_tokens: Iterable[str] = ()
) -> tuple[int, ...]:
    """Tokenizer eos, generation-config eos, then `extra_tokens` present in the vocab; no dups."""
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if config_eos is not None:
        ids.extend([config_eos] if isinstance(config_eos, int) else config_eos)
    vocab = tokenizer.get_vocab()
    ids.extend(vocab[token] for token in extra_tokens if token in vocab)
    return tuple(dict.fromkeys(int(i) for i in ids))


def finalize(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    *,
    dtype: str | None,
    device: str | None,
) -> torch.nn.Module:
    """Move/cast (skipped when dtype/device is None), eval mode, no grads, pad id set."""
    if dtype is not None or device is not None:
        model.to(device=device, dtype=resolve_dtype(dtype) if dtype else None)
    model.eval()
    model.requires_grad_(False)
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None and pad is not None:
        generation_config.pad_token_id = pad
    return model


def output_rows(model: torch.nn.Module) -> int:
    """Number of logits per position: rows of the output head (falls back to config)."""
    head = model.get_output_embeddings()
    rows = getattr(head, "out_features", None)
    return int(rows) if rows is not None else int(model.config.vocab_size)


def set_threads(threads: int) -> None:
    """Pin torch's intra-op CPU threads; 0: torch's default (one per core) capped by the CPU budget
    (affinity and a container's CPU quota, `cpu_budget`)."""
    if threads <= 0:
        threads = min(torch.get_num_threads(), cpu_budget())
    torch.set_num_threads(threads)
