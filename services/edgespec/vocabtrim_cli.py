"""`edgespec vocabtrim build|bench`: the argparse wiring and runners for VocabTrim.

`build` counts tokens of greedy target completions over a prompt set and writes a trim file for
`edgespec draft --vocab-trim FILE`; `bench` times the draft per token and measures greedy tau per
trim size (see `edgespec.bench.vocabtrim`). The algorithm lives in `edgespec.models.vocabtrim`.
"""

from __future__ import annotations

import argparse


def add_vocabtrim_flags(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="vocabtrim_command", required=True)
    build = sub.add_parser("build", help="count target-generated tokens, keep the top N, write a trim file")
    build.add_argument("--model", default="smollm2", help="target preset / spec the trim is for")
    build.add_argument("--top", type=int, required=True, help="N: tokens to keep (specials/EOS included)")
    build.add_argument("--out", required=True, help="trim file to write (JSON)")
    build.add_argument("--max-new-tokens", type=int, default=128, help="greedy target tokens per prompt")
    build.add_argument("--prompts", default=None, help="prompt file (JSONL); default: the bundled set")
    build.add_argument("--batch-size", type=int, default=8, help="prompts per target generate call")
    build.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    build.set_defaults(vocabtrim_run=_run_build)
    bench = sub.add_parser("bench", help="draft ms/token and greedy tau per trim size")
    bench.add_argument("--model", nargs="+", default=["smollm2", "gemma3"], help="preset(s) to measure")
    bench.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192, 16384, 0],
                       help="N values to measure (0: the full vocabulary)")
    bench.add_argument("--trim", default=None, help="trim file to take the top N from (one --model); "
                       "default: calibrate on the prompts not used for tau")
    bench.add_argument("--steps", type=int, default=30, help="timed single-token forwards per size")
    bench.add_argument("--k", type=int, default=4)
    bench.add_argument("--per-category", type=int, default=2, help="tau prompts: first N per category")
    bench.add_argument("--max-new-tokens", type=int, default=48, help="tokens per tau prompt (0: no tau)")
    bench.add_argument("--calibration-tokens", type=int, default=128, help="greedy tokens per calibration prompt")
    bench.add_argument("--threads", type=int, default=1)
    bench.add_argument("--out", default="bench-results", help="folder for vocabtrim.json / vocabtrim.md")
    bench.set_defaults(vocabtrim_run=_run_bench)


def run_vocabtrim(a: argparse.Namespace) -> int:
    return a.vocabtrim_run(a)


def _run_build(a: argparse.Namespace) -> int:
    from edgespec.bench.prompts import load_prompts
    from edgespec.models.loading import set_threads
    from edgespec.models.presets import load_model
    from edgespec.models.prompting import encode_prompt
    from edgespec.models.vocabtrim import build_vocab_trim
    set_threads(a.threads)
    target = load_model(a.model, "target")
    prompts = load_prompts(a.prompts)
    ids = [encode_prompt(target.tokenizer, p.prompt) for p in prompts]
    source = f"{a.prompts or 'bundled prompts.jsonl'} ({len(prompts)} prompts)"
    trim = build_vocab_trim(target, a.model, ids, a.top, a.out, max_new_tokens=a.max_new_tokens,
                            batch_size=a.batch_size, source=source)
    b = trim.build
    print(f"wrote {a.out}: top {trim.n} of {trim.vocab_size} tokens; counted {b['tokens_counted']} tokens "
          f"({b['distinct_tokens']} distinct) over {b['num_prompts']} prompts")
    return 0


def _run_bench(a: argparse.Namespace) -> int:
    from edgespec.bench.vocabtrim import TrimBenchConfig, run_vocabtrim_bench
    if a.trim is not None and len(a.model) != 1:
        raise ValueError("--trim: a trim file fits one model; pass a single --model")
    config = TrimBenchConfig(
        presets=tuple(a.model), sizes=tuple(a.sizes), trim_file=a.trim, steps=a.steps, k=a.k,
        per_category=a.per_category, max_new_tokens=a.max_new_tokens,
        calibration_tokens=a.calibration_tokens, threads=a.threads)
    print(run_vocabtrim_bench(config, a.out))
    return 0
