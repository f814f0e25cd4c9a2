"""Ragged batched forward over a KVPool: the new tokens of many sessions, each on top of its own
cached length, packed into ONE row and run through a transformers decoder in one call.

How: `RaggedCache` (a transformers `Cache`) writes each layer's new keys/values into the sessions'
pool slots with one `index_copy_`; the attention function registered here (`ragged-sdpa`) then
runs SDPA per session over a *view* of that session's slot (no copy, work proportional to the
session's own length), with its own causal (and sliding-window) mask; positions are per token.
Linear layers, norms and the MLP see one packed row of all the step's tokens. A model switched to
`ragged-sdpa` behaves exactly like `sdpa` whenever no ragged step is passed, so other users of the
same model object are unaffected. Not a scheduler (the batch engine is) and not an allocator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.cache_utils import Cache
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

from edgespec.models.kv_pool import KVPool, Slot

RAGGED = "ragged-sdpa"


@dataclass(frozen=True)
class Segment:
    """One session's part of a step: `n` new tokens at positions slot.length.. (packed from `at`)."""

    slot: Slot
    start: int   # cached positions before this step (the first new token's position)
    n: int
    at: int      # index of its first token in the packed row


class RaggedStep:
    """Everything a ragged forward needs besides the tokens: where each token goes, its masks."""

    def __init__(self, pool: KVPool, segments: list[Segment]) -> None:
        self.pool, self.segments = pool, segments
        device = pool.keys[0].device
        self.positions = torch.cat([torch.arange(s.start, s.start + s.n) for s in segments]).to(device)
        self.write_index = torch.cat([torch.arange(s.slot.offset + s.start, s.slot.offset + s.start + s.n)
                                      for s in segments]).to(device)
        self._masks: dict[tuple[int | None, int], list[torch.Tensor | None]] = {}

    def masks(self, window: int | None, group: int) -> list[torch.Tensor | None]:
        """Per segment: bool [group * n, start + n] (query i sees keys <= start + i; the rows repeat
        for the `group` query heads sharing a kv head), None when every key is visible."""
        if (window, group) not in self._masks:
            self._masks[window, group] = [_causal(s.start, s.n, window, group, self.positions.device)
                                          for s in self.segments]
        return self._masks[window, group]


def _causal(start: int, n: int, window: int | None, group: int, device) -> torch.Tensor | None:
    if n == 1 and (window is None or start < window):
        return None
    query = torch.arange(start, start + n, device=device)[:, None]
    key = torch.arange(start + n, device=device)[None, :]
    visible = key <= query
    if window is not None:
        visible &= key > query - window
    return visible.repeat(group, 1)


class RaggedCache(Cache):
    """The transformers `Cache` of one ragged step: writes new keys/values into the pool slots."""

    def __init__(self, step: RaggedStep) -> None:
        super().__init__(layers=[])
        self.step = step

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        pool, index = self.step.pool, self.step.write_index
        pool.keys[layer_idx].index_copy_(1, index, key_states[0].to(pool.keys[layer_idx].dtype))
        pool.values[layer_idx].index_copy_(1, index, value_states[0].to(pool.values[layer_idx].dtype))
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0


def _attend(module, query, key, value, attention_mask, scaling=None, dropout=0.0, ragged_step=None, **kwargs):
    """`ragged-sdpa`: per-session SDPA over pool views when a step is given, else plain sdpa."""
    if ragged_step is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling,
                                      dropout=dropout, **kwargs)
    pool, layer = ragged_step.pool, module.layer_idx
    keys, values = pool.keys[layer], pool.values[layer]
    heads, kv_heads, dim = query.shape[1], keys.shape[0], query.shape[-1]
    group = heads // kv_heads
    masks = ragged_step.masks(getattr(module, "sliding_window", None), group)
    outs = []
    for segment, mask in zip(ragged_step.segments, masks):
        # GQA without repeating keys: the `group` query heads of a kv head become extra query rows
        q = query[:, :, segment.at:segment.at + segment.n].reshape(1, kv_heads, group * segment.n, dim)
        span = slice(segment.slot.offset, segment.slot.offset + segment.start + segment.n)
        out = F.scaled_dot_product_attention(q, keys[None, :, span].to(q.dtype), values[None, :, span].to(q.dtype),
                                             attn_mask=mask, scale=scaling)  # 4D: eligible for the fused CPU/CUDA kernels
        outs.append(out.reshape(heads, segment.n, dim))
    return torch.cat(outs, dim=1).transpose(0, 1).unsqueeze(0), None


AttentionInterface.register(RAGGED, _attend)
ALL_MASK_ATTENTION_FUNCTIONS.register(RAGGED, sdpa_mask)


def install(model: torch.nn.Module) -> None:
    """Switch `model` to `ragged-sdpa` (identical to sdpa outside ragged steps)."""
    if model.config._attn_implementation != RAGGED:
        model.set_attn_implementation(RAGGED)


def ragged_forward(model: torch.nn.Module, step: RaggedStep, ids: torch.Tensor) -> torch.Tensor:
    """Run the decoder over the packed `ids` [N]; return its post-norm last hidden states [N, d]."""
    dummy_mask = torch.ones((1, 1, 1, 1), dtype=torch.bool, device=ids.device)  # 4D: skips mask building
    out = model.get_decoder()(input_ids=ids[None], position_ids=step.positions[None], cache=RaggedCache(step),
                              attention_mask=dummy_mask, use_cache=True, ragged_step=step)
    return out.last_hidden_state[0]
