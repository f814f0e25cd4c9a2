"""Draft runtimes: which engine runs the draft model on the device. A registry keyed by runtime
name — `torch` (transformers; the presets' int8 draft) and `llamacpp` (llama.cpp through
llama-cpp-python; a GGUF) — each loading a `LoadedDraft`: the draft's tokenizer and sizes, what
it can supply (`DraftCapabilities`), and `open_sequence`, a per-session KV sequence with exact
rollback that `LocalDrafter` drives the same way whatever runs underneath.

It does not draft (that is `LocalDrafter`) and does not build presets (`presets.py`). When
llama-cpp-python cannot be imported (never built, no compiler), `load_draft` falls back to the
torch runtime with one warning line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from edgespec.core.types import SessionSpec
from edgespec.models import presets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DraftCapabilities:
    """What a draft runtime can hand the rules besides tokens and q(x)."""

    hidden_states: bool = True   # post-norm final hidden states per drafted token


@dataclass(frozen=True)
class LoadedDraft:
    """A draft model ready to open sessions on, whatever runtime runs it."""

    name: str
    runtime: str
    tokenizer: Any
    vocab_size: int
    hidden_size: int
    eos_token_ids: tuple[int, ...]
    capabilities: DraftCapabilities
    open_sequence: Callable[[list[int], int, bool], Any]  # (prompt ids, max tokens, hidden) -> sequence
    close: Callable[[], None] = lambda: None
    model: Any = None   # the torch module (torch runtime only: HF baselines, calibration)
    runner: Callable[[Any, int], Any] | None = None   # (EngineConfig, sessions) -> a StepRunner for a
                                                      # batch engine shared by sessions (draft batching)

    def check(self, spec: SessionSpec) -> None:
        """Refuse at session open what this runtime cannot supply (ValueError names the field)."""
        if spec.send_hidden_states and not self.capabilities.hidden_states:
            raise ValueError(f"send_hidden_states: the {self.runtime} draft runtime cannot supply hidden states")
        if spec.send_hidden_states and spec.draft_hidden_size != self.hidden_size:
            raise ValueError(f"draft_hidden_size: {spec.draft_hidden_size} is not this draft's {self.hidden_size}")


@dataclass(frozen=True)
class DraftRuntimeOptions:
    """How to run the draft (CLI flags map 1:1)."""

    runtime: str | None = None       # None: the preset's default (`llamacpp` for GGUF presets)
    threads: int = 1                 # llama.cpp n_threads (torch follows the process's --threads)
    vocab_trim: str | None = None    # trim file for the draft head (torch runtime only)
    dtype: str = "float32"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.runtime is not None and self.runtime not in DRAFT_RUNTIMES:
            raise ValueError(f"runtime: {self.runtime!r} is not one of {sorted(DRAFT_RUNTIMES)}")
        if self.threads < 1:
            raise ValueError(f"draft_threads: must be >= 1, got {self.threads}")


def torch_draft(loaded: presets.LoadedModel) -> LoadedDraft:
    """A torch draft model (`presets.load_model(..., "draft")`) as a LoadedDraft."""
    from edgespec.models.kv_sequence import KVSequence
    from edgespec.models.torch_runner import TorchRunner
    model = loaded.model
    return LoadedDraft(
        name=loaded.name, runtime="torch", tokenizer=loaded.tokenizer, vocab_size=loaded.vocab_size,
        hidden_size=loaded.hidden_size, eos_token_ids=loaded.eos_token_ids,
        capabilities=DraftCapabilities(),
        open_sequence=lambda prompt_ids, _max_tokens, _hidden: KVSequence(model, prompt_ids), model=model,
        runner=lambda config, _sessions: TorchRunner(model, config))


def _load_torch(spec: str, options: DraftRuntimeOptions) -> LoadedDraft:
    return torch_draft(presets.load_model(spec, "draft", dtype=options.dtype, device=options.device,
                                          vocab_trim=options.vocab_trim))


def draft_gguf(spec: str) -> Path:
    """The GGUF the llama.cpp runtime runs for `spec`: a preset's (re-quantized) or the file itself."""
    preset = presets.PRESETS.get(spec)
    if preset is not None:
        if preset.gguf is None:
            raise ValueError(f"runtime: preset {spec!r} ships no GGUF; use --runtime torch")
        return preset.gguf.draft_gguf()
    if not spec.endswith(".gguf"):
        raise ValueError(f"runtime: llamacpp runs a .gguf file or a GGUF preset, not {spec!r}")
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"GGUF model file not found: {spec!r}")
    return path


def _load_llamacpp(spec: str, options: DraftRuntimeOptions) -> LoadedDraft:
    from edgespec.models.llamacpp import LlamaCppModel
    from edgespec.models.llamacpp_runner import LlamaCppRunner
    if options.vocab_trim is not None:
        raise ValueError("vocab_trim: the llamacpp runtime computes the full head; use --runtime torch to trim it")
    if options.device != "cpu":
        raise ValueError(f"device: the llamacpp draft runtime runs on cpu, not {options.device!r}")
    path = draft_gguf(spec)
    model = LlamaCppModel(path, options.threads)
    tokenizer = presets.load_tokenizer(spec)
    name = f"{path.stem} (llama.cpp, {options.threads} thread{'s' * (options.threads > 1)})"
    return LoadedDraft(
        name=name, runtime="llamacpp", tokenizer=tokenizer, vocab_size=model.vocab_size,
        hidden_size=model.hidden_size, eos_token_ids=presets.stop_token_ids(spec, tokenizer),
        capabilities=DraftCapabilities(), open_sequence=model.sequence, close=model.close,
        runner=lambda config, sessions: LlamaCppRunner(model, config, sessions))


DRAFT_RUNTIMES: MappingProxyType[str, Callable[[str, DraftRuntimeOptions], LoadedDraft]] = MappingProxyType(
    {"torch": _load_torch, "llamacpp": _load_llamacpp})


def default_runtime(spec: str) -> str:
    """The preset's draft runtime; `llamacpp` for a .gguf file, else `torch`."""
    preset = presets.PRESETS.get(spec)
    if preset is not None:
        return preset.draft_runtime
    return "llamacpp" if spec.endswith(".gguf") else "torch"


def llamacpp_available() -> bool:
    try:
        from edgespec.models.llamacpp import llama_cpp_module
        llama_cpp_module()
    except ImportError as exc:
        log.warning("llama.cpp draft runtime unavailable (%s); drafting with torch", str(exc).split(";")[0])
        return False
    return True


def load_draft(spec: str, options: DraftRuntimeOptions = DraftRuntimeOptions()) -> LoadedDraft:
    """The draft model of `spec` on the chosen runtime, else torch for a trimmed head (VocabTrim is
    torch-only), else the preset's; ready for sessions."""
    runtime = options.runtime or ("torch" if options.vocab_trim else default_runtime(spec))
    if runtime == "llamacpp" and options.runtime is None and not llamacpp_available():
        runtime = "torch"
    return DRAFT_RUNTIMES[runtime](spec, options)
