"""EngineConfig: the batching and KV-memory limits of a `BatchEngine` (CLI flags map 1:1). A
plain value with its checks; no torch or transformers import, so configs and the CLI stay light."""

from __future__ import annotations

from dataclasses import dataclass

MAX_BLOCK_FEED = 34  # a verify feed: at most 32 drafts + the pending bonus + a correction
DRAFT_GATHER_SHARE = 0.5   # `gather_share` of a batching draft, whose sessions come back from local
                           # sampling: waiting for all of them pays (N=16: 234 vs 214 tok/s at 0.1)


@dataclass(frozen=True)
class EngineConfig:
    """How much KV memory to preallocate and how much work one step may take."""

    kv_cache_tokens: int = 16384       # KV positions preallocated for all sessions together
    kv_cache_memory_fraction: float | None = None   # CUDA: size the pool to this share of the GPU's free
                                                    # memory once the model is loaded (overrides kv_cache_tokens)
    max_batch_tokens: int = 512        # tokens in one step's forward
    max_batch_sessions: int = 64       # sessions in one step (1: one session per forward, unbatched)
    prefill_chunk: int = 256           # most prompt tokens of one session in one step
    admission_wait_s: float = 5.0      # how long a new session waits for KV room before refusal
    gather_ms: float = 50.0            # under load, how long a step may wait for the sessions the last
                                       # step served to send their next work ...
    gather_share: float = 0.1          # ... and at most this share of the last step's time (a target's
                                       # sessions come back over the network)

    def __post_init__(self) -> None:
        if self.max_batch_tokens < MAX_BLOCK_FEED:
            raise ValueError(f"max_batch_tokens must be >= {MAX_BLOCK_FEED}, got {self.max_batch_tokens}")
        for name in ("kv_cache_tokens", "max_batch_sessions", "prefill_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        fraction = self.kv_cache_memory_fraction
        if fraction is not None and not 0.0 < fraction < 1.0:
            raise ValueError(f"kv_cache_memory_fraction must be in (0, 1), got {fraction}")
        if self.admission_wait_s < 0 or self.gather_ms < 0:
            raise ValueError("admission_wait_s and gather_ms must be >= 0")
        if not 0.0 <= self.gather_share <= 1.0:
            raise ValueError(f"gather_share must be in [0, 1], got {self.gather_share}")
