"""VocabTrim (Goel et al., 2025): the draft's LM head cut down to the N tokens most frequent in
target-generated text. `TrimmedHead` computes d x N logits and scatters them into a full
vocabulary row filled with -inf, so q is exactly the softmax renormalised over the kept tokens
(zeros elsewhere) and sampling, acceptance rules and the residual max(0, p - q) run unchanged:
verification stays lossless, dropped tokens just are never proposed. The target is never trimmed.

This module holds the trim file format, the head, and the builder (counting tokens of greedy
target completions); it does NOT load presets, read prompt files or benchmark anything.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

if TYPE_CHECKING:
    from edgespec.models.presets import LoadedModel

FORMAT = "edgespec-vocabtrim/1"


@dataclass(frozen=True)
class VocabTrim:
    """A trimmed vocabulary: which rows of the draft head to keep, and where they came from."""

    model: str                  # the model spec it was built for, e.g. "smollm2"
    vocab_size: int             # rows of the full head (logits per position)
    kept_ids: tuple[int, ...]   # always-kept specials first, then by descending count (ties: id)
    counts: tuple[int, ...]     # occurrences of each kept id in the calibration text
    build: Mapping = field(default_factory=dict)  # provenance: source, prompts, counted, ...

    def __post_init__(self) -> None:
        n = len(self.kept_ids)
        if n < 1 or len(self.counts) != n:
            raise ValueError(f"vocab_trim: {n} kept ids with {len(self.counts)} counts (need >= 1, equal)")
        if len(set(self.kept_ids)) != n or not 0 <= min(self.kept_ids) <= max(self.kept_ids) < self.vocab_size:
            raise ValueError(f"vocab_trim: kept ids must be distinct and in [0, {self.vocab_size})")

    @property
    def n(self) -> int:
        return len(self.kept_ids)

    def top(self, n: int) -> VocabTrim:
        """The first `n` kept ids (the `n` most frequent, specials included)."""
        if not 1 <= n <= self.n:
            raise ValueError(f"vocab_trim: top must be in 1..{self.n}, got {n}")
        return replace(self, kept_ids=self.kept_ids[:n], counts=self.counts[:n])

    def save(self, path: str | os.PathLike) -> None:
        doc = {"format": FORMAT, "model": self.model, "vocab_size": self.vocab_size, "n": self.n,
               "build": dict(self.build), "kept_ids": list(self.kept_ids), "counts": list(self.counts)}
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> VocabTrim:
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"vocab_trim: cannot read {os.fspath(path)!r}: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"vocab_trim: {os.fspath(path)!r} is not a {FORMAT} file")
        try:
            trim = cls(model=doc["model"], vocab_size=int(doc["vocab_size"]), kept_ids=tuple(doc["kept_ids"]),
                       counts=tuple(doc["counts"]), build=doc.get("build", {}))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"vocab_trim: {os.fspath(path)!r} lacks a valid field: {exc}") from None
        if doc.get("n") != trim.n:
            raise ValueError(f"vocab_trim: {os.fspath(path)!r} says n={doc.get('n')} but lists {trim.n} ids")
        return trim


class TrimmedHead(torch.nn.Module):
    """An LM head over the kept rows only; logits of dropped tokens are -inf.

    The rows are copied, so a tied input embedding is left untouched. `out_features` stays the
    full vocabulary size: callers see [..., V] logits exactly as from the original head.
    """

    def __init__(self, head: torch.nn.Linear, kept_ids: Sequence[int]) -> None:
        super().__init__()
        ids = torch.as_tensor(list(kept_ids), dtype=torch.long, device=head.weight.device)
        self.in_features, self.out_features = head.in_features, head.out_features
        self.register_buffer("kept_ids", ids)  # [N]
        self.weight = torch.nn.Parameter(head.weight.detach().index_select(0, ids), requires_grad=False)  # [N, d]
        bias = head.bias
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach().index_select(0, ids),
                                                                 requires_grad=False)  # [N]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # hidden: [..., d] -> logits: [..., V]
        kept = torch.nn.functional.linear(hidden, self.weight, self.bias)  # [..., N]
        full = kept.new_full((*kept.shape[:-1], self.out_features), float("-inf"))
        return full.index_copy_(-1, self.kept_ids, kept)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, kept={self.kept_ids.numel()}, out_features={self.out_features}"


def _kept_ids(trim: VocabTrim | str | os.PathLike | Sequence[int], vocab_size: int) -> list[int]:
    if isinstance(trim, (str, os.PathLike)):
        trim = VocabTrim.load(trim)
    if isinstance(trim, VocabTrim):
        if trim.vocab_size != vocab_size:
            raise ValueError(f"vocab_trim: built for a vocabulary of {trim.vocab_size} "
                             f"({trim.model}), but the draft head has {vocab_size} rows")
        return list(trim.kept_ids)
    return list(VocabTrim("ids", vocab_size, tuple(trim), (0,) * len(trim)).kept_ids)  # validates


def apply_vocab_trim(model: torch.nn.Module, trim: VocabTrim | str | os.PathLike | Sequence[int]) -> TrimmedHead:
    """Replace `model`'s LM head by a TrimmedHead over `trim` (a trim file, a VocabTrim or ids)."""
    head = model.get_output_embeddings()
    if not isinstance(head, torch.nn.Linear):
        raise ValueError(f"vocab_trim: the draft head is a {type(head).__name__}, not an untrimmed Linear")
    if getattr(model.config, "final_logit_softcapping", None):
        raise ValueError("vocab_trim: logit soft-capping would turn -inf into a finite logit")
    trimmed = TrimmedHead(head, _kept_ids(trim, head.out_features))
    model.set_output_embeddings(trimmed)
    return trimmed


def select_top(counts: Mapping[int, int], n: int, vocab_size: int, always: Iterable[int] = ()) -> list[int]:
    """`always` first, then the most frequent ids (ties: lower id), then unseen ids in ascending
    order (BPE / SentencePiece ids roughly follow merge / score order) until there are `n`."""
    forced = list(dict.fromkeys(i for i in always if 0 <= i < vocab_size))
    if not len(forced) <= n <= vocab_size:
        raise ValueError(f"top: must be in {len(forced)}..{vocab_size} (the always-kept tokens fit), got {n}")
    taken = set(forced)
    seen = sorted((i for i in counts if i not in taken and 0 <= i < vocab_size), key=lambda i: (-counts[i], i))
    kept = (forced + seen)[:n]
    taken.update(kept)
    return kept + list(islice((i for i in range(vocab_size) if i not in taken), n - len(kept)))


def _until_stop(ids: list[int], stop: set[int]) -> list[int]:
    """`ids` cut after the first stop token (kept), so padding after it is never counted."""
    return next((ids[: i + 1] for i, t in enumerate(ids) if t in stop), ids)


def greedy_completions(target: LoadedModel, prompts: Sequence[list[int]], max_new_tokens: int,
                       batch_size: int = 8) -> list[list[int]]:
    """Greedy HF `generate` of the target on each prompt (left-padded batches); ids up to EOS."""
    pad = target.tokenizer.pad_token_id
    pad = target.eos_token_ids[0] if pad is None else pad
    stop, out = set(target.eos_token_ids), []
    for start in tqdm(range(0, len(prompts), batch_size), desc="target completions", unit="batch"):
        batch = prompts[start:start + batch_size]
        width = max(map(len, batch))
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in batch], device=target.model.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=target.model.device)
        with torch.inference_mode():
            rows = target.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                         do_sample=False, eos_token_id=list(stop), pad_token_id=pad)
        out += [_until_stop(row[width:].tolist(), stop) for row in rows]
    return out


def build_vocab_trim(target: LoadedModel, spec: str, prompts: Sequence[list[int]], top: int,
                     out: str | os.PathLike | None = None, *, max_new_tokens: int = 128,
                     batch_size: int = 8, source: str = "") -> VocabTrim:
    """Count prompt + greedy-completion tokens of `target` over `prompts` (templated ids), keep
    the specials/EOS plus the most frequent up to `top`, and write the trim file to `out`."""
    completions = greedy_completions(target, prompts, max_new_tokens, batch_size)
    counts = Counter(t for ids in [*prompts, *completions] for t in ids)
    always = [*target.eos_token_ids, *target.tokenizer.all_special_ids]
    kept = select_top(counts, top, target.vocab_size, always)
    build = {"source": "target-generated greedy completions", "target": target.name,
             "prompts": source or f"{len(prompts)} prompts", "num_prompts": len(prompts),
             "max_new_tokens": max_new_tokens, "counted": "prompt + completion tokens",
             "tokens_counted": sum(counts.values()), "distinct_tokens": len(counts),
             "always_kept": sorted(set(always)), "order": "always-kept, then by count, then unseen by id",
             "date": time.strftime("%Y-%m-%d %H:%M")}
    trim = VocabTrim(spec, target.vocab_size, tuple(kept), tuple(counts.get(i, 0) for i in kept), build)
    if out is not None:
        trim.save(out)
    return trim
