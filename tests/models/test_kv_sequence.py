"""KVSequence on the tiny target: pending tokens, rollback to a committed length (logits after a
rollback equal a fresh forward pass over the same tokens), and never `crop(-0)` (which would wipe
the whole cache)."""

from __future__ import annotations

import pytest
import torch

from edgespec.models import tiny
from edgespec.models.kv_sequence import KVSequence

PROMPT = [5, 17, 42, 99, 7]


@pytest.fixture(scope="module")
def model():
    return tiny.build_model("target", tiny.build_tokenizer()).eval()


def _fresh_logits(model, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0, -1].float()


def test_pending_is_what_the_cache_has_not_seen(model):
    seq = KVSequence(model, PROMPT)
    assert seq.pending() == PROMPT and seq.cache_len == 0
    with torch.inference_mode():
        seq.feed(PROMPT[:-1])
    assert seq.pending() == PROMPT[-1:] and seq.cache_len == len(PROMPT) - 1
    seq.commit([11, 12])
    assert seq.pending() == [PROMPT[-1], 11, 12] and seq.tokens == PROMPT + [11, 12]


def test_rollback_drops_rejected_drafts_and_the_next_feed_matches_a_fresh_pass(model):
    seq = KVSequence(model, PROMPT)
    with torch.inference_mode():
        seq.feed(PROMPT[:-1])
        seq.feed(seq.pending() + [30, 31, 32])               # the last prompt token + a 3-token block
        assert seq.cache_len == len(PROMPT) + 3
        seq.rollback(len(seq.tokens) + 1)                    # keep the first draft only
        assert seq.cache_len == len(PROMPT) + 1
        seq.commit([30, 77])                                 # accepted 30, correction 77
        out = seq.feed(seq.pending())
    assert seq.pending() == [] and seq.forward_passes == 3
    assert torch.allclose(out.logits[-1], _fresh_logits(model, PROMPT + [30, 77]), atol=1e-4)


def test_rollback_to_the_cached_length_never_crops_zero(model, monkeypatch):
    seq = KVSequence(model, PROMPT)
    with torch.inference_mode():
        seq.feed(PROMPT)
    crops = []
    real_crop = seq.cache.crop
    monkeypatch.setattr(seq.cache, "crop", lambda n: (crops.append(n), real_crop(n)))
    seq.rollback(len(PROMPT))                                # nothing beyond: no crop at all
    seq.rollback(len(PROMPT) + 5)                            # longer than the cache: no crop either
    assert crops == [] and seq.cache_len == len(PROMPT)
    seq.rollback(len(PROMPT) - 2)
    assert crops == [-2] and seq.cache_len == len(PROMPT) - 2
