"""IncrementalDetokenizer over the tiny preset's byte-level tokenizer: deltas never split a UTF-8
character, and they always add up to the full decode."""

from __future__ import annotations

import pytest

from edgespec.models import tiny
from edgespec.orchestrator.detokenizer import IncrementalDetokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return tiny.build_tokenizer()


def test_a_multibyte_character_is_held_back_until_complete(tokenizer):
    ids = tokenizer.encode("é€a", add_special_tokens=False)      # é: 2 bytes, €: 3 bytes, a: 1
    detok = IncrementalDetokenizer(tokenizer)
    deltas = [detok.add([i]) for i in ids]
    assert deltas == ["", "é", "", "", "€", "a"]
    assert detok.text == "é€a" and detok.ids == ids


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_deltas_add_up_to_the_full_decode_whatever_the_chunking(tokenizer, chunk):
    text = "naïve café — 温度 ok"
    ids = tokenizer.encode(text, add_special_tokens=False)
    detok = IncrementalDetokenizer(tokenizer)
    deltas = [detok.add(ids[i:i + chunk]) for i in range(0, len(ids), chunk)]
    assert "".join(deltas) == text == detok.text
    assert all("\ufffd" not in d for d in deltas)


def test_special_tokens_add_no_text(tokenizer):
    detok = IncrementalDetokenizer(tokenizer)
    eos = tokenizer.convert_tokens_to_ids("</s>")
    assert detok.add(tokenizer.encode("hi", add_special_tokens=False)) == "hi"
    assert detok.add([eos]) == "" and detok.text == "hi"
