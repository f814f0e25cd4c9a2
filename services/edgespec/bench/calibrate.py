"""`edgespec calibrate`: fit the `semantic` rule's calibrated logistic head on the bundled prompts.

The target decodes greedily and the draft runs in lockstep on the same context (plain HF forward
passes through `KVSequence`, in process). At each position where the draft's greedy token differs
from the target's, it records exactly the rule's features (`semantic_score.features`, the draft's
hidden state rounded to float16 as on the wire) and a label: 1 when the target's greedy
continuation of T tokens after the draft's token says the same thing as after its own token
(sentence-embedding cosine of the two decoded texts >= --threshold), else 0. A logistic
regression with L2 (plain torch, LBFGS, standardized features folded back into raw weights) is
written with `save_head`, the file `edgespec target --semantic-head` loads.

It is NOT the rule itself (core/acceptance/semantic.py), does not fit a draft->target hidden
projection (draft and target hidden sizes must match) and never talks gRPC.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from edgespec.core.acceptance.semantic_score import FEATURES, SemanticHead, features, training_free_score

Similarity = Callable[[list[str], list[str]], list[float]]  # texts a, b -> cos(a[i], b[i])
EMBED_BATCH = 64


@dataclass(frozen=True)
class Mismatch:
    """One position where the greedy draft token differs from the target's."""

    prompt_id: str
    features: torch.Tensor  # [len(FEATURES)]
    draft_text: str         # the draft token + the target's greedy continuation after it
    target_text: str        # the target's own token + its greedy continuation


def add_calibrate_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2", help="preset for both draft and target")
    p.add_argument("--out", required=True, help="head file to write (load with `target --semantic-head`)")
    p.add_argument("--prompts", default=None, help="prompt file (JSONL); default: the bundled set")
    p.add_argument("--per-category", type=int, default=2, help="first N prompts of each category")
    p.add_argument("--max-new-tokens", type=int, default=48, help="target greedy tokens per prompt")
    p.add_argument("--continuation", type=int, default=16, help="tokens continued after each substitution")
    p.add_argument("--threshold", type=float, default=0.85, help="MiniLM cosine at or above which label = 1")
    p.add_argument("--max-mismatches", type=int, default=200, help="stop collecting after this many")
    p.add_argument("--l2", type=float, default=1e-2, help="L2 penalty on the standardized weights")
    p.add_argument("--steps", type=int, default=200, help="LBFGS iterations")
    p.add_argument("--threads", type=int, default=1, help="torch threads")


def check_args(a: argparse.Namespace) -> None:
    """ValueError naming the first bad flag (before anything is loaded)."""
    positive = {"--per-category": a.per_category, "--max-new-tokens": a.max_new_tokens,
                "--continuation": a.continuation, "--max-mismatches": a.max_mismatches,
                "--steps": a.steps, "--threads": a.threads}
    for flag, value in positive.items():
        if value < 1:
            raise ValueError(f"{flag}: must be >= 1, got {value}")
    if not -1.0 <= a.threshold <= 1.0:
        raise ValueError(f"--threshold: a cosine similarity in [-1, 1], got {a.threshold}")
    if a.l2 < 0:
        raise ValueError(f"--l2: must be >= 0, got {a.l2}")


def continue_greedy(seq, first: int, n: int, eos: Sequence[int]) -> list[int]:
    """[first, then up to n target-greedy tokens] fed on top of `seq`'s cache, which is restored."""
    base, out = seq.cache_len, [first]
    while len(out) <= n and out[-1] not in eos:
        out.append(int(seq.feed([out[-1]]).logits[-1].argmax()))
    seq.rollback(base)
    return out


@torch.inference_mode()
def collect(target, draft, prompt_id: str, prompt_ids: list[int], a: argparse.Namespace,
            limit: int) -> list[Mismatch]:
    """Lockstep greedy decoding of one prompt; at most `limit` mismatches."""
    from edgespec.models.kv_sequence import KVSequence
    t_seq, d_seq = KVSequence(target.model, prompt_ids), KVSequence(draft.model, prompt_ids)
    lm_head = target.model.get_output_embeddings().weight.detach()
    eos, found = target.eos_token_ids, []
    for _ in range(a.max_new_tokens):
        if len(found) >= limit:
            break
        t, d = t_seq.feed(t_seq.pending(), hidden=True), d_seq.feed(d_seq.pending(), hidden=True)
        own, drafted = int(t.logits[-1].argmax()), int(d.logits[-1].argmax())
        if drafted != own:
            f = features(d.hidden[-1:].half().float(), t.hidden[-1:], lm_head,
                         torch.tensor([drafted]), t.logits[-1:])[0]
            texts = [target.tokenizer.decode(continue_greedy(t_seq, tok, a.continuation, eos),
                                             skip_special_tokens=True) for tok in (drafted, own)]
            found.append(Mismatch(prompt_id, f, texts[0], texts[1]))
        t_seq.commit([own])
        d_seq.commit([own])
        if own in eos:
            break
    return found


def label(similarity: Similarity, a: list[str], b: list[str], threshold: float) -> torch.Tensor:
    """[n] float labels: 1.0 where cos(a[i], b[i]) >= threshold (scored in batches)."""
    sims: list[float] = []
    for i in range(0, len(a), EMBED_BATCH):
        sims += similarity(a[i:i + EMBED_BATCH], b[i:i + EMBED_BATCH])
    return (torch.tensor(sims, dtype=torch.float32) >= threshold).float()


def fit(x: torch.Tensor, y: torch.Tensor, l2: float = 1e-2, steps: int = 200) -> SemanticHead:
    """L2 logistic regression on standardized features x [n, F], labels y [n] -> a raw-feature head."""
    x, y = x.float(), y.float()
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    z = (x - mean) / std
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y) + l2 * (w.square().sum()
                                                                                       + 0.01 * b.square())
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    weights = (w / std).detach()
    return SemanticHead(weights=weights.float(), bias=float(b.detach() - (weights * mean).sum()))


def auc(scores: torch.Tensor, y: torch.Tensor) -> float:
    """ROC AUC (Mann-Whitney, ties count half); NaN when only one class is present."""
    pos, neg = scores[y > 0.5], scores[y <= 0.5]
    if pos.numel() == 0 or neg.numel() == 0:
        return math.nan
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())


def training_stats(head: SemanticHead, x: torch.Tensor, y: torch.Tensor) -> dict:
    p = head.score(x)
    return {"samples": int(y.numel()), "positives": int(y.sum()), "positive_rate": float(y.mean()),
            "accuracy": float(((p >= 0.5).float() == y).float().mean()), "auc": auc(p, y),
            "training_free_auc": auc(training_free_score(x), y)}


def _collect_all(target, draft, a: argparse.Namespace) -> list[Mismatch]:
    from edgespec.bench.prompts import load_prompts
    from edgespec.models.prompting import encode_prompt
    found: list[Mismatch] = []
    bar = tqdm(load_prompts(a.prompts, per_category=a.per_category), desc="calibrate", unit="prompt")
    for prompt in bar:
        ids = encode_prompt(target.tokenizer, prompt.prompt)
        found += collect(target, draft, prompt.id, ids, a, a.max_mismatches - len(found))
        bar.set_postfix(mismatches=len(found))
        if len(found) >= a.max_mismatches:
            break
    return found


def run_calibrate(a: argparse.Namespace, similarity: Similarity | None = None) -> int:
    """The `edgespec calibrate` command; `similarity` defaults to the packaged MiniLM embedder."""
    from edgespec.models.presets import load_model
    from edgespec.models.semantic_head import save_head
    check_args(a)
    torch.set_num_threads(a.threads)
    if similarity is None:
        from edgespec.bench.embedding import SentenceEmbedder
        similarity = SentenceEmbedder().similarity  # fail before the long run if the model is missing
    target, draft = load_model(a.model, "target"), load_model(a.model, "draft")
    if draft.hidden_size != target.hidden_size:
        raise ValueError(f"--model: draft hidden size {draft.hidden_size} differs from the target's "
                         f"{target.hidden_size}; fitting a hidden projection is not supported")
    found = _collect_all(target, draft, a)
    if not found:
        raise ValueError("no draft/target mismatches on these prompts: nothing to calibrate")
    x = torch.stack([m.features for m in found])
    y = label(similarity, [m.draft_text for m in found], [m.target_text for m in found], a.threshold)
    head = fit(x, y, a.l2, a.steps)
    stats = training_stats(head, x, y)
    save_head(head, a.out, meta={"model": a.model, "target": target.name, "draft": draft.name,
                                 "threshold": a.threshold, "continuation": a.continuation, **stats})
    print(f"{stats['samples']} mismatches, {stats['positives']} labelled equivalent "
          f"({stats['positive_rate']:.1%}); training accuracy {stats['accuracy']:.3f}, AUC {stats['auc']:.3f} "
          f"(training-free score AUC {stats['training_free_auc']:.3f})")
    print("weights: " + ", ".join(f"{n}={w:+.3f}" for n, w in zip(FEATURES, head.weights.tolist()))
          + f", bias={head.bias:+.3f}")
    print(f"wrote {a.out}")
    return 0
