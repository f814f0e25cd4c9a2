"""The bundled benchmark prompt set (`prompts.jsonl`) and its loader.

One JSON object per line: {"id", "category", "prompt"}; six categories of realistic requests for a
small instruct model. This module only reads prompts; it does not tokenize, template, or run them.
"""

from __future__ import annotations

import importlib.resources
import json
import os
from dataclasses import dataclass

CATEGORIES: tuple[str, ...] = ("chat", "math", "code", "summarization", "qa", "extraction")

_PACKAGE = "edgespec.bench"
_BUNDLED_FILE = "prompts.jsonl"
_FIELDS = ("id", "category", "prompt")


@dataclass(frozen=True)
class BenchPrompt:
    """One benchmark request: a stable id, its category, and the raw user text (no chat template)."""

    id: str
    category: str
    prompt: str


def _read_text(path: str | os.PathLike | None) -> str:
    if path is None:
        return importlib.resources.files(_PACKAGE).joinpath(_BUNDLED_FILE).read_text(encoding="utf-8")
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _parse_line(line: str, lineno: int) -> BenchPrompt:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {lineno}: invalid JSON ({exc.msg})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"line {lineno}: expected a JSON object, got {type(obj).__name__}")
    for field in _FIELDS:
        value = obj.get(field)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"line {lineno}: field {field!r} must be a non-empty string")
    if obj["category"] not in CATEGORIES:
        raise ValueError(f"line {lineno}: unknown category {obj['category']!r}; expected one of {CATEGORIES}")
    return BenchPrompt(id=obj["id"], category=obj["category"], prompt=obj["prompt"])


def _parse(text: str) -> list[BenchPrompt]:
    prompts: list[BenchPrompt] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        prompt = _parse_line(line, lineno)
        if prompt.id in seen:
            raise ValueError(f"line {lineno}: duplicate id {prompt.id!r} (first on line {seen[prompt.id]})")
        seen[prompt.id] = lineno
        prompts.append(prompt)
    return prompts


def _take_per_category(prompts: list[BenchPrompt], n: int) -> list[BenchPrompt]:
    """First `n` prompts of each category, grouped in CATEGORIES order (file order within a group)."""
    if n < 0:
        raise ValueError(f"per_category must be >= 0, got {n}")
    out: list[BenchPrompt] = []
    for category in CATEGORIES:
        out.extend([p for p in prompts if p.category == category][:n])
    return out


def load_prompts(path: str | os.PathLike | None = None, *, per_category: int | None = None) -> list[BenchPrompt]:
    """Load benchmark prompts from `path` (default: the bundled `prompts.jsonl`).

    Blank lines are skipped. A malformed line (bad JSON, missing/empty field, unknown category,
    duplicate id) raises ValueError naming its 1-based line number. With `per_category`, keeps the
    first N prompts of each category, in CATEGORIES order.
    """
    prompts = _parse(_read_text(path))
    if per_category is not None:
        prompts = _take_per_category(prompts, per_category)
    return prompts
