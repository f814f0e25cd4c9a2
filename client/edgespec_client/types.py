"""Result types of the edgespec SDK: frozen, JSON-ready dataclasses.

They mirror the `edgespec.v1` Final/Chunk/GenerationStats messages field for field. This module
does NOT import the protobuf stubs; building these from wire messages lives in `convert`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypedDict


def _jsonable(value: Any) -> Any:
    """Tuples become lists and nested dataclasses their `to_dict()`; scalars pass through."""
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


class _ToDict:
    """Mixin: `to_dict()` over the dataclass fields, in declaration order."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict of every field (tuples as lists, nested as dicts)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Percentiles(_ToDict):
    """Percentiles of a per-round timing, milliseconds."""

    p50: float = 0.0
    p90: float = 0.0
    p99: float = 0.0
    mean: float = 0.0


@dataclass(frozen=True, slots=True)
class GenerationStats(_ToDict):
    """Statistics of one generation session (see `GenerationStats` in orchestrator.proto)."""

    rounds: int = 0
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    mean_accepted_length: float = 0.0
    acceptance_rate: float = 0.0
    per_position_accepted: tuple[int, ...] = ()
    target_forward_passes: int = 0
    tokens_per_second: float = 0.0
    bytes_up: int = 0
    bytes_down: int = 0
    generated_tokens: int = 0
    total_ms: float = 0.0
    ttft_ms: float = 0.0
    server_tokens: int = 0
    mode_switches: int = 0
    predrafted_tokens: int = 0
    relaxed_accepted: int = 0
    resumes: int = 0               # sessions reopened after a broken stream (one re-prefill each)
    draft_ms: Percentiles = field(default_factory=Percentiles)
    verify_ms: Percentiles = field(default_factory=Percentiles)
    round_trip_ms: Percentiles = field(default_factory=Percentiles)


@dataclass(frozen=True, slots=True)
class Chunk(_ToDict):
    """Tokens committed in one speculation round, with the text they add."""

    token_ids: tuple[int, ...]
    text: str
    relaxed_accepted: int = 0


@dataclass(frozen=True, slots=True)
class GenerationResult(_ToDict):
    """A finished generation: output, what ran, and the session statistics."""

    text: str
    token_ids: tuple[int, ...]
    prompt_token_ids: tuple[int, ...]
    finish_reason: str
    acceptance: str
    lossless: bool
    stats: GenerationStats = field(default_factory=GenerationStats)


class GenerateOptions(TypedDict, total=False):
    """Keyword options of `generate()` / `stream()`; every key is optional and is the field of the
    same name in orchestrator.proto's GenerateRequest (the sampling ones in SamplingParams), where
    each is documented. An omitted or None option is left unset: the server's default applies.

    max_new_tokens: most tokens to generate. temperature: 0 is greedy. top_k: 0 disables.
    top_p: nucleus mass in (0, 1]. seed: seed of the session's random generators.
    acceptance: "exact" / "rejection" (lossless), "fly" / "dropmatch" / "semantic" (lossy).
    acceptance_params: the lossy rules' parameters, by their names in common.proto's
        AcceptanceParams.
    draft_length: draft-length policy: "fixed", "heuristic", "adaedl", "svip", "auto", "server".
    k: draft tokens per round ("fixed"), the first round's (adaptive). k_max: adaptive cap.
    proactive: keep drafting while each verdict is in flight (never changes outputs).
    early_stop: auto's in-round entropy stop, "adaedl", "svip" or "none".
    raw: tokenize `prompt` as is, without the chat template.
    ignore_eos: generate max_new_tokens, past end-of-sequence tokens (fixed-length load).
    prompt_token_ids: prompt token ids used verbatim, instead of `prompt`.
    """

    max_new_tokens: int
    temperature: float
    top_k: int
    top_p: float | None
    seed: int
    acceptance: str | None
    acceptance_params: Mapping[str, Any] | None
    draft_length: str | None
    k: int | None
    k_max: int | None
    proactive: bool
    early_stop: str | None
    raw: bool
    ignore_eos: bool
    prompt_token_ids: Sequence[int] | None
