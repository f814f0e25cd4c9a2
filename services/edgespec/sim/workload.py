"""The device-side client of `edgespec sim`: run a list of generation jobs through the SDK against
the draft's orchestrator (run inside the device namespace) and print one JSON line per job as it
finishes: client wall time, client-side time to first token, and the SDK's result. A job that
fails prints one `error: ...` line and ends the run with exit 1. Nothing here knows about namespaces.

    python -m edgespec.sim.workload --server 127.0.0.1:50052 --jobs jobs.json
    jobs.json: [{"id": "chat-01", "label": "auto", "prompt": "...", "options": {...}}, ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import sys
import time

from edgespec_client import AsyncClient, EdgespecError

RESULT_PREFIX = '{"job"'


async def run_job(client: AsyncClient, job: dict) -> dict:
    """One streamed generation, timed from the call to the first chunk and to the result."""
    prompt = job.get("prompt", "")
    options = {**job.get("options", {})}
    if "prompt_token_ids" in job:
        options["prompt_token_ids"] = job["prompt_token_ids"]
    start = time.perf_counter()
    first_chunk = None
    async with client.stream(prompt, **options) as stream:
        async for _ in stream:
            first_chunk = first_chunk or time.perf_counter()
    seconds = time.perf_counter() - start
    ttft_ms = ((first_chunk or time.perf_counter()) - start) * 1000
    return {"job": job["id"], "label": job.get("label", ""), "seconds": seconds, "client_ttft_ms": ttft_ms,
            "result": stream.result.to_dict()}


async def run_jobs(server: str, jobs: list[dict], timeout_s: float) -> int:
    async with AsyncClient(server, timeout=timeout_s) as client:
        for job in jobs:
            try:
                record = await run_job(client, job)
            except EdgespecError as exc:
                print(f"error: job {job['id']} ({job.get('label', '')}): {exc}", flush=True)
                return 1
            print(json.dumps(record), flush=True)
    return 0


def parse_records(text: str) -> list[dict]:
    """The job records in the workload's output (other lines are logs)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith(RESULT_PREFIX)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgespec.sim.workload", description=__doc__.split("\n")[0])
    parser.add_argument("--server", required=True, help="the orchestrator (draft) HOST:PORT")
    parser.add_argument("--jobs", required=True, help="JSON file: a list of jobs")
    parser.add_argument("--timeout", type=float, default=600.0, help="deadline of each call, s")
    a = parser.parse_args(argv)
    jobs = json.loads(pathlib.Path(a.jobs).read_text())
    return asyncio.run(run_jobs(a.server, jobs, a.timeout))


if __name__ == "__main__":
    sys.exit(main())
