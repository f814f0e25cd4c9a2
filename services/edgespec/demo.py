"""`edgespec demo`, the main job: start a target and a draft (+ embedded orchestrator) as separate
processes on loopback, stream one generation through the SDK, print its stats, shut both down.
It is a supervisor only; the services are the same `edgespec target` / `edgespec draft` commands.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from edgespec.generate_cli import generate_options
from edgespec.console import run_generate

DEFAULT_PROMPT = "Explain in three sentences why the sky is blue."
READY_TIMEOUT_S = 900.0  # the first start converts the GGUF weights (~30 s) before serving


def start_service(role: str, args: list[str], ready_file: pathlib.Path,
                  log_file: pathlib.Path | None = None) -> tuple[subprocess.Popen, str]:
    """Spawn `edgespec ROLE ...` and wait until it has written its bound address; `log_file`:
    where its stdout and stderr go (default: this process's)."""
    threads = ["--threads", "1"] if role in ("target", "draft") else []  # one core per model process
    cmd = [sys.executable, "-m", "edgespec", role, "--listen", "127.0.0.1:0", "--ready-file", str(ready_file),
           *threads, *args]
    env = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    log = open(log_file, "ab") if log_file is not None else None  # noqa: SIM115 - the child holds it
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=env, stdout=log, stderr=log)
    if log is not None:
        log.close()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready_file.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"edgespec {role} exited with code {proc.returncode} before serving")
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"edgespec {role} did not start within {READY_TIMEOUT_S:.0f} s")
        time.sleep(0.1)
    return proc, ready_file.read_text().strip()


def stop_service(proc: subprocess.Popen) -> None:
    """SIGTERM (graceful drain), then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_demo(a: argparse.Namespace) -> int:
    prompt = a.prompt or DEFAULT_PROMPT
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="edgespec-demo-") as tmp:
        try:
            print(f"starting target ({a.model}) ...", file=sys.stderr)
            target, target_addr = start_service("target", ["--model", a.model], pathlib.Path(tmp, "target"))
            procs.append(target)
            print(f"starting draft ({a.model}) + orchestrator ...", file=sys.stderr)
            draft, draft_addr = start_service(
                "draft", ["--model", a.model, "--target", target_addr], pathlib.Path(tmp, "draft"))
            procs.append(draft)
            print(f"target on {target_addr}; draft + orchestrator on {draft_addr}\n", file=sys.stderr)
            print(f"> {prompt}\n")
            return run_generate(draft_addr, prompt, generate_options(a), as_json=False, timeout=1800.0)
        finally:
            for proc in reversed(procs):
                stop_service(proc)
