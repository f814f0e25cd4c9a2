"""Compose vs the same two processes run natively, interleaved (not a test: run it by hand, as root,
on a quiet machine): `python tests/deploy/compose_vs_native.py [ROUNDS]`. Builds and brings up the
compose spine the way test_compose_up.py does (40 ms emulated RTT), starts `edgespec target` and
`edgespec draft --emulate-rtt 40` with the container's flags (draft: torch 1 thread, llama.cpp 1
thread), runs ROUNDS 128-token greedy generations of one prompt on each, alternating which goes
first, prints each run and the medians, and tears everything down."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_compose_up as compose  # noqa: E402
from docker_engine import DockerEngine  # noqa: E402

EDGESPEC, TOKENS = [sys.executable, "-m", "edgespec"], 128
NATIVE = {"target": ["--listen", "127.0.0.1:60051", "--model", "smollm2"],
          "draft": ["--listen", "127.0.0.1:60052", "--target", "127.0.0.1:60051", "--model", "smollm2",
                    "--threads", "1", "--draft-threads", "1", "--emulate-rtt", str(compose.RTT_MS)]}
PORTS = {"compose": 50052, "native": 60052}
COLUMNS = ("tokens/s", "round trip p50 ms", "draft p50 ms", "verify p50 ms")


def generate(port: int) -> tuple[float, ...]:
    done = subprocess.run([*EDGESPEC, "generate", "--server", f"localhost:{port}", "--prompt", compose.PROMPT,
                           "--max-new-tokens", str(TOKENS), "--json"], capture_output=True, text=True, timeout=300,
                          check=True)
    stats = json.loads(done.stdout)["stats"]
    return (stats["tokens_per_second"], stats["round_trip_ms"]["p50"], stats["draft_ms"]["p50"],
            stats["verify_ms"]["p50"])


def main(rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="compose-vs-native-"))
    engine = DockerEngine.find_or_start(work)
    stack, native = compose.Stack(engine, work), []
    try:
        print("build (s)", {k: round(v) for k, v in stack.build().items()}, "up (s)", round(stack.up()), flush=True)
        for role, args in NATIVE.items():
            ready = work / f"{role}.ready"
            native.append(subprocess.Popen([*EDGESPEC, role, *args, "--ready-file", str(ready)],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            while not ready.exists():
                time.sleep(0.5)
        for port in PORTS.values():
            generate(port)   # warm-up
        runs: dict[str, list[tuple[float, ...]]] = {name: [] for name in PORTS}
        for i in range(rounds):
            for name in (list(PORTS) if i % 2 == 0 else list(PORTS)[::-1]):
                runs[name].append(generate(PORTS[name]))
                print(name, dict(zip(COLUMNS, runs[name][-1])), flush=True)
        medians = {name: [statistics.median(run[j] for run in r) for j in range(len(COLUMNS))] for name, r in runs.items()}
        for name, values in medians.items():
            print(f"{name}: " + ", ".join(f"{c} {v:.1f}" for c, v in zip(COLUMNS, values)))
        print(f"compose / native tokens/s: {medians['compose'][0] / medians['native'][0]:.3f}")
    finally:
        for process in native:
            process.terminate()
            process.wait()
        stack.down()
        left = stack.leftovers()
        engine.stop()
        print("left behind:", left + engine.host_changes())


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
