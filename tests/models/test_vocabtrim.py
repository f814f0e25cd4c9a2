"""VocabTrim: the trimmed head equals the full head on kept ids and is -inf elsewhere; q is the
softmax renormalised over the kept ids (entropy finite); drafts never leave the kept set; the
rejection rule stays lossless with such a q (tokens outside the set still come via the residual);
the trim file round-trips and is refused for another vocabulary; `vocabtrim build` writes one; a
trimmed draft served over gRPC keeps greedy parity with target-only decoding (tiny preset)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from edgespec.bench.baselines import target_only
from edgespec.core.acceptance import get_rule
from edgespec.core.draft_length import FixedK
from edgespec.core.loop import generate
from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.sampling import entropy, make_generator, probs_from_logits, sample
from edgespec.core.types import SamplingParams, SessionSpec
from edgespec.draft.config import DraftConfig
from edgespec.draft.serve import start_draft
from edgespec.models.gguf_preset import quantize_decoder_layers
from edgespec.models.local_drafter import LocalDrafter
from edgespec.models.local_verifier import LocalVerifier
from edgespec.models.draft_runtime import torch_draft
from edgespec.models.presets import load_model
from edgespec.models.prompting import encode_prompt
from edgespec.models.vocabtrim import TrimmedHead, VocabTrim, apply_vocab_trim, build_vocab_trim, select_top
from edgespec.orchestrator.config import OrchestratorConfig
from edgespec.rpc.server import ServerOptions
from edgespec.target.config import TargetConfig
from edgespec.target.serve import start_target
from edgespec_client import AsyncClient

VOCAB, KEEP = 320, 200
PROMPTS = ["hello there", "the quick brown fox", "1 2 3 4", "speculative decoding"]
FAST = ServerOptions(listen="127.0.0.1:0", grace_s=0.5, keepalive_time_s=1.0, keepalive_timeout_s=1.0)


@pytest.fixture(scope="module")
def target():
    return load_model("tiny", "target")


@pytest.fixture(scope="module")
def trim_file(target, tmp_path_factory):
    ids = [encode_prompt(target.tokenizer, p) for p in PROMPTS]
    path = tmp_path_factory.mktemp("trim") / "tiny.json"
    build_vocab_trim(target, "tiny", ids, KEEP, path, max_new_tokens=24, batch_size=3)
    return path


def _kept_mask(ids) -> torch.Tensor:
    mask = torch.zeros(VOCAB, dtype=torch.bool)
    mask[list(ids)] = True
    return mask


def test_trimmed_head_equals_full_head_on_kept_ids_and_leaves_the_embedding():
    model = load_model("tiny", "draft").model
    full = model.get_output_embeddings()
    kept = torch.randperm(VOCAB, generator=torch.Generator().manual_seed(0))[:KEEP].tolist()
    embedding = model.get_input_embeddings().weight.clone()
    hidden = torch.randn(2, 3, full.in_features)
    expected = full(hidden)
    head = apply_vocab_trim(model, kept)
    assert model.get_output_embeddings() is head and isinstance(head, TrimmedHead)
    logits = model.get_output_embeddings()(hidden)
    mask = _kept_mask(kept)
    assert logits.shape == expected.shape and head.weight.shape == (KEEP, full.in_features)
    assert torch.allclose(logits[..., mask], expected[..., mask], atol=1e-5)
    assert torch.isneginf(logits[..., ~mask]).all()
    assert torch.equal(model.get_input_embeddings().weight, embedding)
    with pytest.raises(ValueError, match="vocab_trim"):
        apply_vocab_trim(model, kept)  # already trimmed


@pytest.mark.parametrize("params", [SamplingParams(temperature=1.0), SamplingParams(temperature=0.7, top_k=50),
                                    SamplingParams(temperature=1.3, top_p=0.8), SamplingParams()],
                         ids=["t1", "topk", "topp", "greedy"])
def test_q_is_the_softmax_renormalised_over_kept_ids(params):
    gen = torch.Generator().manual_seed(1)
    full_logits = torch.randn(VOCAB, generator=gen) * 2
    kept = torch.randperm(VOCAB, generator=gen)[:KEEP]
    trimmed = torch.full((VOCAB,), float("-inf")).index_copy(0, kept, full_logits[kept])
    q = probs_from_logits(trimmed, params)
    assert not q.isnan().any() and q.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert (q[~_kept_mask(kept.tolist())] == 0).all()
    assert torch.allclose(q[kept], probs_from_logits(full_logits[kept], params), atol=1e-6)
    assert entropy(trimmed).item() == pytest.approx(entropy(full_logits[kept]).item(), abs=1e-5)


def test_int8_draft_takes_a_trimmed_head():
    draft = load_model("tiny", "draft")
    quantize_decoder_layers(draft.model)
    apply_vocab_trim(draft.model, list(range(KEEP)))
    with torch.inference_mode():
        logits = draft.model(torch.tensor([[3, 89, 87, 73]])).logits[0, -1]
    assert logits.shape == (VOCAB,) and torch.isneginf(logits[KEEP:]).all() and logits[:KEEP].isfinite().all()


class _Spy:
    """A drafter that records every proposed token."""

    def __init__(self, inner: LocalDrafter) -> None:
        self.inner, self.proposed = inner, []

    async def propose(self, plan):
        proposal = await self.inner.propose(plan)
        self.proposed += proposal.tokens
        return proposal

    def __getattr__(self, name):
        return getattr(self.inner, name)


async def _run(target, draft, prompt_ids, params, acceptance, n=40):
    spec = ResolvedSpec.of(SessionSpec(prompt_ids=tuple(prompt_ids), params=params, acceptance=acceptance,
                                       max_new_tokens=n))
    verifier, drafter = LocalVerifier(target.model, target.vocab_size, spec), _Spy(LocalDrafter(torch_draft(draft), spec))
    await verifier.prefill()
    await drafter.prefill()
    steps = generate(drafter, verifier, FixedK(4), n, target.eos_token_ids)
    tokens = [t async for step in steps for t in step.tokens]
    return tokens, drafter.proposed


async def test_trimmed_draft_proposes_only_kept_tokens_and_output_is_unchanged(target, trim_file):
    draft = load_model("tiny", "draft", vocab_trim=str(trim_file))
    kept = set(VocabTrim.load(trim_file).kept_ids)
    sampled_outside = 0
    for prompt in PROMPTS:
        ids = encode_prompt(target.tokenizer, prompt)
        tokens, proposed = await _run(target, draft, ids, SamplingParams(), "exact")
        assert set(proposed) <= kept
        assert tokens == target_only(target.model, ids, 40, target.eos_token_ids).token_ids
        tokens, proposed = await _run(target, draft, ids, SamplingParams(temperature=1.0, seed=3), "rejection")
        assert set(proposed) <= kept
        sampled_outside += sum(t not in kept for t in tokens)
    assert sampled_outside > 0  # the residual still reaches tokens the draft cannot propose


def test_rejection_with_trimmed_q_commits_tokens_distributed_as_p():
    """1e5 rounds of propose (from trimmed q) / verify / correct: committed first tokens ~ p."""
    gen = torch.Generator().manual_seed(7)
    vocab, draws, params = 12, 100_000, SamplingParams(temperature=1.0, seed=1)
    p_logits = torch.randn(vocab, generator=gen) * 1.5
    dropped = p_logits.argsort(descending=True)[[1, 2, 6, 10]]  # trim out likely and unlikely tokens
    q_logits = (torch.randn(vocab, generator=gen) * 1.5).index_fill(0, dropped, float("-inf"))
    p, q = probs_from_logits(p_logits, params), probs_from_logits(q_logits, params)
    assert q[dropped].sum() == 0 and p[dropped].sum() > 0.2
    rule, draft_gen, target_gen = get_rule("rejection"), make_generator(1, 2), make_generator(1, 1)
    counts = torch.zeros(vocab, dtype=torch.float64)
    for _ in range(draws):
        x = sample(q, draft_gen)
        outcome = rule.verify([x], [float(q[x])], p_logits.expand(2, -1), params, target_gen)
        first = x if outcome.accepted else outcome.token
        counts[rule.correct(outcome.residual_p, q, draft_gen) if first is None else first] += 1
    tv = 0.5 * (counts / draws - p.double()).abs().sum().item()
    assert tv < 0.01, f"TV(committed, p) = {tv:.4f}"


def test_trim_file_round_trip_and_validation(trim_file, tmp_path):
    trim = VocabTrim.load(trim_file)
    assert trim.model == "tiny" and trim.vocab_size == VOCAB and trim.n == KEEP
    forced = len(trim.build["always_kept"])
    assert set(trim.build["always_kept"]) == set(trim.kept_ids[:forced])  # specials / EOS lead
    rest = list(trim.counts[forced:])
    assert rest == sorted(rest, reverse=True)  # then by descending count
    trim.save(tmp_path / "copy.json")
    assert VocabTrim.load(tmp_path / "copy.json") == trim
    assert trim.top(50).kept_ids == trim.kept_ids[:50]
    other = VocabTrim("other", 1000, trim.kept_ids, trim.counts)
    other.save(tmp_path / "other.json")
    with pytest.raises(ValueError, match="vocab_trim: built for a vocabulary of 1000"):
        load_model("tiny", "draft", vocab_trim=str(tmp_path / "other.json"))
    with pytest.raises(ValueError, match="vocab_trim"):
        load_model("tiny", "target", vocab_trim=str(trim_file))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="vocab_trim"):
        VocabTrim.load(tmp_path / "bad.json")


def test_select_top_keeps_specials_then_frequent_then_fills_by_id():
    assert select_top({7: 5, 9: 5, 4: 1}, 6, 12, always=[11]) == [11, 7, 9, 4, 0, 1]
    with pytest.raises(ValueError, match="top"):
        select_top({}, 1, 12, always=[1, 2])


def test_cli_build_writes_a_trim_file(tmp_path):
    out = tmp_path / "trim.json"
    cmd = [sys.executable, "-m", "edgespec", "vocabtrim", "build", "--model", "tiny", "--top", str(KEEP),
           "--out", str(out), "--max-new-tokens", "4", "--prompts", str(_prompt_file(tmp_path))]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    trim = VocabTrim.load(out)
    assert trim.n == KEEP and trim.build["num_prompts"] == 2 and trim.build["max_new_tokens"] == 4


def _prompt_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"id": "a", "category": "chat", "prompt": "hi"}\n'
                    '{"id": "b", "category": "qa", "prompt": "why?"}\n')
    return path


async def test_trimmed_draft_over_grpc_keeps_greedy_parity(target, trim_file):
    target_running, target_servicer = await start_target(TargetConfig(model="tiny", server=FAST), target)
    orchestrator = OrchestratorConfig(target=target_running.address, tokenizer="tiny", server=FAST)
    draft = await start_draft(DraftConfig(model="tiny", orchestrator=orchestrator, server=FAST,
                                          vocab_trim=str(trim_file)))
    try:
        assert "vocab trim 200/320" in draft.drafter.draft.name
        async with AsyncClient(draft.running.address, timeout=60.0) as client:
            for prompt in PROMPTS:
                result = await client.generate(prompt, max_new_tokens=40, k=4)
                reference = target_only(target.model, list(result.prompt_token_ids), 40, target.eos_token_ids)
                assert list(result.token_ids) == reference.token_ids
    finally:
        await draft.running.stop()
        await draft.shutdown()
        await target_running.stop()
        await target_servicer.shutdown()


def test_bench_reports_every_size_with_tau_in_range(tmp_path):
    from edgespec.bench.vocabtrim import TrimBenchConfig, run_vocabtrim_bench
    config = TrimBenchConfig(presets=("tiny",), sizes=(100, KEEP, 0), steps=3, warmup=1, per_category=1,
                             max_new_tokens=12, calibration_tokens=4)
    markdown = run_vocabtrim_bench(config, tmp_path)
    result = json.loads((tmp_path / "vocabtrim.json").read_text())["results"]["tiny"]
    assert [r["N"] for r in result["rows"]] == [100, KEEP, VOCAB]
    assert all(1.0 <= r["tau"] <= config.k + 1 and r["forward"]["cpu_ms"] > 0 for r in result["rows"])
    assert "| 320 (full) |" in markdown and (tmp_path / "vocabtrim.md").read_text() in markdown
