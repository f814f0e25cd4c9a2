"""The mismatch-first upload of the draft's hidden states, in one place: which sessions use it, the
positions the target asks for (those that failed exact match), the rows the device sends for
them, and the [k, d] block they fill in on the target (exact matches stay 0: the rule never reads
them). The transport (`rpc/remote.py`) and the verifier (`models/local_verifier.py`) both call
this; neither restates the condition. Not the wire encoding (`rpc/codec.py`).
"""

from __future__ import annotations

import torch

from edgespec.core.acceptance import Needs
from edgespec.core.acceptance_params import AcceptanceParams

MISMATCH_FIRST = "mismatch-first"


def uploads_on_request(needs: Needs, params: AcceptanceParams) -> bool:
    """True when the block goes up without hidden states and the target asks for the rows it needs."""
    return needs.draft_hidden and params.semantic_upload == MISMATCH_FIRST


def missing_positions(target_logits: torch.Tensor, drafts: list[int]) -> tuple[int, ...]:
    """Draft positions whose token is not the target's argmax (`target_logits`: [>= k, V])."""
    k = len(drafts)
    mismatched = target_logits[:k].argmax(-1) != torch.tensor(drafts, dtype=torch.long)
    return tuple(int(i) for i in torch.nonzero(mismatched).flatten())


def requested_rows(hidden_states: torch.Tensor, positions: list[int]) -> torch.Tensor:
    """The device side: the [m, d] float16 rows of its block's hidden states at `positions`."""
    return hidden_states[torch.tensor(positions, dtype=torch.long)].to(torch.float16)


def filled_block(rows: torch.Tensor, positions: tuple[int, ...], k: int, d: int) -> torch.Tensor:
    """The target side: a [k, d] float16 block with `rows` at `positions`, zeros elsewhere."""
    full = torch.zeros((k, d), dtype=torch.float16)
    if positions:
        full[list(positions)] = rows.to(torch.float16)
    return full
