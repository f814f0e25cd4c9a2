"""`edgespec bench tls`: what transport security costs. The two-process stack `edgespec bench`
measures through (target + draft with its embedded orchestrator, one model thread each) runs
twice side by side — plaintext, and TLS with token auth on both hops (SDK -> draft, draft ->
target; a throwaway CA from `trustme`) — and each prompt runs on both in turn, the order
alternating, so machine noise hits both alike. Reports tokens/s, the secured/plaintext ratio
and greedy parity (JSON + Markdown). It is NOT a security test (tests/services/test_security.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import secrets
import statistics
import tempfile
import time
from contextlib import ExitStack

SYSTEMS = ("plaintext", "TLS + token")


def add_tls_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tls-passes", type=int, default=2, help="bench tls: passes over the prompts")


def _credentials(folder: pathlib.Path) -> tuple[list[str], list[str], dict]:
    """A CA, a certificate for 127.0.0.1 and a token, written under `folder`: (server flags,
    upstream client flags, SDK arguments)."""
    try:
        import trustme
    except ImportError:
        raise ValueError("bench tls: needs `trustme` for its throwaway CA (pip install trustme)") from None
    ca, token = trustme.CA(), secrets.token_urlsafe(24)
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {name: folder / name for name in ("ca.pem", "cert.pem", "key.pem", "tokens", "token")}
    ca.cert_pem.write_to_path(str(paths["ca.pem"]))
    cert.private_key_pem.write_to_path(str(paths["key.pem"]))
    paths["cert.pem"].write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    paths["tokens"].write_text(f"{token} bench\n")
    paths["token"].write_text(token + "\n")
    server = ["--tls-cert", str(paths["cert.pem"]), "--tls-key", str(paths["key.pem"]),
              "--auth-tokens", str(paths["tokens"])]
    upstream = ["--tls-ca", str(paths["ca.pem"]), "--token-file", str(paths["token"])]
    return server, upstream, {"tls_ca": str(paths["ca.pem"]), "token": token}


async def _measure(a: argparse.Namespace, prompts, addresses: dict[str, str], sdk: dict) -> list[dict]:
    from tqdm import tqdm

    from edgespec_client import AsyncClient
    async with AsyncClient(addresses["plaintext"], timeout=3600) as plain, \
            AsyncClient(addresses["TLS + token"], timeout=3600, **sdk) as secure:
        clients = {"plaintext": plain, "TLS + token": secure}
        for client in clients.values():   # warm-up: model caches, connections, TLS handshakes
            await client.generate(prompts[0].prompt, max_new_tokens=8)
        runs = []
        order = list(SYSTEMS)
        for pass_ in range(a.tls_passes):
            for prompt in tqdm(prompts, desc=f"bench tls pass {pass_ + 1}", unit="prompt"):
                order.reverse()
                for system in order:
                    start = time.perf_counter()
                    result = await clients[system].generate(prompt.prompt, max_new_tokens=a.max_new_tokens, k=a.k[0])
                    runs.append({"system": system, "prompt_id": prompt.id, "pass": pass_,
                                 "seconds": time.perf_counter() - start, "token_ids": list(result.token_ids)})
    return runs


def summarize(runs: list[dict]) -> dict:
    """Per system: tokens, seconds, tokens/s (total and median per prompt); the ratio of the totals,
    the median of the per-prompt ratios (each prompt ran on both back to back: the paired
    statistic, robust to the machine's load drifting between prompts); parity."""
    rows = {}
    for system in SYSTEMS:
        mine = [r for r in runs if r["system"] == system]
        tokens, seconds = sum(len(r["token_ids"]) for r in mine), sum(r["seconds"] for r in mine)
        rows[system] = {"runs": len(mine), "tokens": tokens, "seconds": round(seconds, 3),
                        "tokens_per_s": round(tokens / seconds, 2),
                        "median_prompt_tokens_per_s": round(statistics.median(
                            len(r["token_ids"]) / r["seconds"] for r in mine), 2)}
    pairs: dict[tuple, dict[str, dict]] = {}
    for r in runs:
        pairs.setdefault((r["prompt_id"], r["pass"]), {})[r["system"]] = r
    same = sum(len({tuple(r["token_ids"]) for r in pair.values()}) == 1 for pair in pairs.values())
    speed = [{s: len(r["token_ids"]) / r["seconds"] for s, r in pair.items()} for pair in pairs.values()]
    ratio = rows["TLS + token"]["tokens_per_s"] / rows["plaintext"]["tokens_per_s"]
    return {"systems": rows, "secured_over_plaintext": round(ratio, 4),
            "paired_median_ratio": round(statistics.median(s["TLS + token"] / s["plaintext"] for s in speed), 4),
            "parity": f"{same}/{len(pairs)}"}


def _compact(runs: list[dict]) -> list[dict]:
    """The runs as the JSON keeps them: token counts, not ids (parity is in the summary)."""
    return [{**{k: v for k, v in r.items() if k != "token_ids"}, "tokens": len(r["token_ids"])} for r in runs]


def to_markdown(meta: dict, summary: dict) -> str:
    lines = [f"# TLS + token auth vs plaintext ({meta['model']}, {meta['prompts']} prompts x {meta['passes']} "
             f"passes, {meta['max_new_tokens']} new tokens, k={meta['k']}, interleaved)", "",
             "| system | tokens/s | median per prompt | tokens | seconds |", "|---|---:|---:|---:|---:|"]
    for system, row in summary["systems"].items():
        lines.append(f"| {system} | {row['tokens_per_s']:.2f} | {row['median_prompt_tokens_per_s']:.2f} | "
                     f"{row['tokens']} | {row['seconds']:.1f} |")
    lines += ["", f"TLS + token / plaintext: **{summary['paired_median_ratio']:.3f}x** (median of the per-prompt "
              f"ratios; each prompt ran on both back to back), {summary['secured_over_plaintext']:.3f}x of the totals; "
              f"identical greedy output on {summary['parity']} prompt runs.", ""]
    return "\n".join(lines)


def run_tls(a: argparse.Namespace) -> int:
    from edgespec.bench.prompts import load_prompts
    from edgespec.bench.stack import server_processes
    prompts = load_prompts(a.prompts, per_category=a.per_category)[: a.limit]
    with tempfile.TemporaryDirectory(prefix="edgespec-bench-tls-") as tmp, ExitStack() as stack:
        server, upstream, sdk = _credentials(pathlib.Path(tmp))
        plain = stack.enter_context(server_processes(a.model))
        secure = stack.enter_context(server_processes(a.model, [*server, *upstream], server))
        addresses = {"plaintext": plain.addresses["draft"], "TLS + token": secure.addresses["draft"]}
        runs = asyncio.run(_measure(a, prompts, addresses, sdk))
    summary = summarize(runs)
    meta = {"model": a.model, "prompts": len(prompts), "passes": a.tls_passes, "max_new_tokens": a.max_new_tokens,
            "k": a.k[0]}
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tls.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": _compact(runs)}, indent=1))
    (out / "tls.md").write_text(to_markdown(meta, summary))
    print(to_markdown(meta, summary))
    return 0
