"""Terminal output for `edgespec generate` and `edgespec demo`: stream text as it is committed,
then a stats table (or one JSON object). Talks to the orchestrator through the SDK only."""

from __future__ import annotations

import json
import sys

from edgespec_client import Client, GenerationResult

STATS_ROWS = (
    ("rounds", "rounds", "{:d}"),
    ("generated tokens", "generated_tokens", "{:d}"),
    ("tau (committed/round, bonus incl.)", "mean_accepted_length", "{:.2f}"),
    ("acceptance rate", "acceptance_rate", "{:.1%}"),
    ("target forward passes", "target_forward_passes", "{:d}"),
    ("tokens/s", "tokens_per_second", "{:.2f}"),
    ("time to first token (ms)", "ttft_ms", "{:.0f}"),
    ("bytes up / down", None, None),
)


def stats_table(result: GenerationResult) -> str:
    """A small aligned table of the headline statistics of one generation."""
    s = result.stats
    lines = [f"acceptance: {result.acceptance} (lossless: {str(result.lossless).lower()}), "
             f"finish: {result.finish_reason}"]
    for label, key, fmt in STATS_ROWS:
        value = f"{s.bytes_up} / {s.bytes_down}" if key is None else fmt.format(getattr(s, key))
        lines.append(f"  {label:<36} {value}")
    lines.append(f"  {'accepted per draft position':<36} {list(s.per_position_accepted)}")
    for label, pct in (("draft ms", s.draft_ms), ("verify ms (target)", s.verify_ms),
                       ("round trip ms", s.round_trip_ms)):
        lines.append(f"  {label + ' p50 / p90 / p99':<36} {pct.p50:.1f} / {pct.p90:.1f} / {pct.p99:.1f}")
    return "\n".join(lines)


def run_generate(server: str, prompt: str, options: dict, *, as_json: bool, timeout: float,
                 connection: dict | None = None) -> int:
    """Generate via the SDK: stream text to stdout then print stats, or print one JSON object.
    `connection`: the SDK's TLS / token arguments (tls_ca, tls_cert, tls_key, server_name, token)."""
    with Client(server, timeout=timeout, **(connection or {})) as client:
        if as_json:
            print(json.dumps(client.generate(prompt, **options).to_dict()))
            return 0
        with client.stream(prompt, **options) as stream:
            for chunk in stream:
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
            result = stream.result
    print("\n")
    print(stats_table(result))
    return 0
