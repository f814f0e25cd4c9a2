"""Score and render `edgespec bench --quality`: per output, sentence-embedding similarity,
token-level exact-match rate and target NLL against target-only greedy output (bench prompts),
and exact-answer correctness (the answer set); per system and k, the aggregates, the Markdown
table and the τ-vs-quality plot. No generation happens here (see `quality`).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

import torch

REFERENCE = "target greedy"


@dataclass(frozen=True)
class Scored:
    """An output with its quality measures (None where they do not apply)."""

    system: str
    k: int
    item: str
    kind: str
    text: str
    token_ids: list[int]
    stats: dict | None
    similarity: float | None     # MiniLM cosine to the target-greedy text (bench prompts)
    token_match: float | None    # share of target-greedy positions with the same token
    nll: float | None            # target negative log-likelihood per generated token, nats
    correct: bool | None         # exact-answer items: the answer appears in the output


@torch.inference_mode()
def target_nll(model, prompt_ids: list[int], token_ids: list[int]) -> float | None:
    """Mean -log p(token | prefix) of the generated tokens under the target."""
    if not token_ids:
        return None
    ids = torch.tensor([prompt_ids + token_ids], device=model.device)
    logp = torch.log_softmax(model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float(), dim=-1)
    picked = logp[torch.arange(len(token_ids)), torch.tensor(token_ids, device=logp.device)]
    return float(-picked.mean())


def token_match(tokens: list[int], reference: list[int]) -> float:
    """Positional agreement over the reference's length (missing positions disagree)."""
    return sum(a == b for a, b in zip(tokens, reference)) / max(len(reference), 1)


def score(outputs, items: dict, target, embedder) -> list[Scored]:
    decode = lambda ids: target.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
    reference = {o.item: o for o in outputs if o.system == REFERENCE}
    texts = [decode(o.token_ids) for o in outputs]
    open_ended = [items[o.item].answer is None for o in outputs]
    pairs = [(t, decode(reference[o.item].token_ids)) for o, t, oe in zip(outputs, texts, open_ended) if oe]
    sims = iter(embedder.similarity([a for a, _ in pairs], [b for _, b in pairs]) if pairs else [])
    scored = []
    for o, text, oe in zip(outputs, texts, open_ended):
        answer = items[o.item].answer
        scored.append(Scored(
            o.system, o.k, o.item, items[o.item].kind, text, o.token_ids, o.stats,
            similarity=next(sims) if oe else None,
            token_match=token_match(o.token_ids, reference[o.item].token_ids) if oe else None,
            nll=target_nll(target.model, o.prompt_ids, o.token_ids) if oe else None,
            correct=None if answer is None else answer.lower() in text.lower()))
    return scored


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _row(outs: list[Scored]) -> dict:
    row = {"similarity": _mean(o.similarity for o in outs), "token_match": _mean(o.token_match for o in outs),
           "identical": sum(o.token_match == 1.0 for o in outs if o.token_match is not None),
           "nll": _mean(o.nll for o in outs), "accuracy": _mean(float(o.correct) for o in outs if o.correct is not None)}
    stats = [o.stats for o in outs if o.stats and o.similarity is not None]  # bench prompts only
    rounds = sum(s["rounds"] for s in stats)
    if rounds and outs[0].k:
        accepted = sum(s["accepted_tokens"] for s in stats)
        row |= {"tau": (accepted + rounds) / rounds,
                "acceptance_rate": accepted / max(sum(s["drafted_tokens"] for s in stats), 1),
                "relaxed_share": sum(s["relaxed_accepted"] for s in stats) / max(accepted, 1),
                "bytes_up_per_round": sum(s["bytes_up"] for s in stats) / rounds}
    return row


def summarize(scored: list[Scored]) -> dict:
    """Rows keyed "system" (references) or "system @ k=K", with τ gains over exact at that k."""
    groups: dict[str, list[Scored]] = defaultdict(list)
    for o in scored:
        groups[o.system if not o.k else f"{o.system} @ k={o.k}"].append(o)
    rows = {name: _row(outs) | {"system": outs[0].system, "k": outs[0].k} for name, outs in groups.items()}
    for row in rows.values():
        exact = rows.get(f"exact @ k={row['k']}")
        if row.get("tau") and exact and exact.get("tau"):
            row["tau_gain"] = row["tau"] / exact["tau"] - 1.0
    return {"rows": rows, "similarity_scale": {
        "target_t03": rows.get("target T=0.3", {}).get("similarity"),
        "draft_only": rows.get("draft greedy", {}).get("similarity")}}


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def to_markdown(meta: dict, summary: dict) -> str:
    scale = summary["similarity_scale"]
    lines = [f"### edgespec bench --quality — {meta['model']} ({meta['prompts']} prompts × "
             f"{meta['max_new_tokens']} tokens, {meta['answers']} exact-answer items, {meta['date']})", "",
             f"target: {meta['target']}; draft: {meta['draft']}. Reference: target-only greedy output. "
             f"Similarity scale: target T=0.3 samples {_fmt(scale['target_t03'], '.3f')} (natural variation), "
             f"draft-only {_fmt(scale['draft_only'], '.3f')} (floor).", "",
             "| system | k | τ | τ vs exact | acceptance | relaxed share | similarity | token match | identical "
             "| NLL/token | exact-answer acc. | bytes up/round |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in summary["rows"].items():
        lines.append(
            f"| {r['system']} | {r['k'] or '—'} | {_fmt(r.get('tau'), '.2f')} | {_fmt(r.get('tau_gain'), '+.1%')} "
            f"| {_fmt(r.get('acceptance_rate'), '.1%')} | {_fmt(r.get('relaxed_share'), '.1%')} "
            f"| {_fmt(r['similarity'], '.3f')} | {_fmt(r['token_match'], '.1%')} | {r['identical']} "
            f"| {_fmt(r['nll'], '.3f')} | {_fmt(r['accuracy'], '.1%')} | {_fmt(r.get('bytes_up_per_round'), '.0f')} |")
    return "\n".join(lines) + "\n"


def plot(summary: dict, path) -> None:
    """τ (x) against similarity to target-greedy output (y), one marker per system and k."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for r in summary["rows"].values():
        if r.get("tau") is not None and r["similarity"] is not None:
            ax.scatter(r["tau"], r["similarity"], label=f"{r['system']} k={r['k']}")
    for key, style, label in (("target_t03", "--", "target T=0.3 vs greedy"), ("draft_only", ":", "draft-only")):
        if summary["similarity_scale"][key] is not None:
            ax.axhline(summary["similarity_scale"][key], linestyle=style, color="grey", label=label)
    ax.set_xlabel("τ (tokens per target pass, bonus included)")
    ax.set_ylabel("similarity to target-greedy output (MiniLM cosine)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
