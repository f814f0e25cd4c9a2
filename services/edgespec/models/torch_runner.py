"""TorchRunner: a transformers decoder as a `StepRunner` — a preallocated `KVPool` of contiguous
slots and one ragged forward per step (`ragged_attention.py`: every feed's tokens packed in one
row, SDPA per session over a view of its own slot), then the LM head ONCE over every feed's wanted
rows: on one CPU thread sixteen 5-row head matmuls cost 220 ms against 59 ms for one 80-row
matmul (each small-M GEMM re-reads the whole vocabulary matrix). Serves the target and torch
drafts alike; it does not schedule (the batch engine does).
"""

from __future__ import annotations

import torch

from edgespec.models.engine_config import EngineConfig
from edgespec.models.kv_pool import KVPool, pool_tokens
from edgespec.models.ragged_attention import RaggedStep, Segment, install, ragged_forward
from edgespec.models.step_runner import StepFeed, StepOut


class TorchRunner:
    """Ragged batched forwards of one torch model over its own KV pool."""

    def __init__(self, model: torch.nn.Module, config: EngineConfig) -> None:
        self.model = model
        install(model)
        dtype = next(model.parameters()).dtype
        tokens = pool_tokens(model.config, dtype, model.device, config.kv_cache_tokens, config.kv_cache_memory_fraction)
        self.pool = KVPool(model.config, tokens, dtype, model.device)
        self.lm_head = model.get_output_embeddings()
        self.softcap = getattr(model.config, "final_logit_softcapping", None)

    def run(self, feeds: list[StepFeed]) -> list[StepOut]:
        segments, ids = [], []
        for feed in feeds:
            segments.append(Segment(feed.slot, feed.slot.length, len(feed.ids), len(ids)))
            ids.extend(feed.ids)
        with torch.inference_mode():
            states = ragged_forward(self.model, RaggedStep(self.pool, segments),
                                    torch.tensor(ids, dtype=torch.long, device=self.pool.keys[0].device))
            wanted = [(i, states[s.at + s.n - feed.rows: s.at + s.n])
                      for i, (feed, s) in enumerate(zip(feeds, segments)) if feed.rows]
            outs: list[StepOut] = [(None, None)] * len(feeds)
            if wanted:
                logits = self._logits(torch.cat([rows for _, rows in wanted])).split([len(r) for _, r in wanted])
                for (i, rows), part in zip(wanted, logits):
                    outs[i] = (part, rows.float().cpu() if feeds[i].hidden else None)
        return outs

    def _logits(self, rows: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(rows).float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits.cpu()

    def close(self) -> None:
        """Nothing to free eagerly: the pool goes with the runner."""
