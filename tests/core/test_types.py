"""Proposal.check: the one block-shape check the codec and the verifier share."""

from __future__ import annotations

import pytest
import torch

from edgespec.core.types import MAX_DRAFT_TOKENS, Proposal


@pytest.mark.parametrize("fields,hidden_size,error", [
    ({"tokens": (1,) * (MAX_DRAFT_TOKENS + 1)}, None, "token_ids: at most"),
    ({"tokens": (1, 2), "q_probs": (0.5,)}, None, "q_probs: expected 2"),
    ({"tokens": (1, 2), "entropies": (0.1, 0.2, 0.3)}, None, "entropies: expected 2"),
    ({"tokens": (1, 2)}, 8, "hidden_states: required"),
    ({"tokens": (1, 2), "hidden_states": torch.zeros(2, 4, dtype=torch.float16)}, 8, r"float16 \[2, 8\]"),
    ({"tokens": (1, 2), "hidden_states": torch.zeros(2, 8)}, 8, r"got float32 \[2, 8\]"),
])
def test_a_malformed_block_names_its_field(fields, hidden_size, error):
    with pytest.raises(ValueError, match=error):
        Proposal(round=0, **fields).check(hidden_size)


def test_well_formed_blocks_pass():
    Proposal(round=0, tokens=(1, 2), q_probs=(0.5, 0.25), entropies=(0.1, 0.2)).check(None)
    Proposal(round=0, tokens=(1, 2), hidden_states=torch.zeros(2, 8, dtype=torch.float16)).check(8)
    Proposal(round=0, tokens=()).check(8)                    # an empty block carries no hidden states
