"""The edgespec programs of a lab, as real subprocesses: `edgespec target` in the edge namespace,
`edgespec draft` (+ its delay proxy when the delay is user-space) in the device namespace, the
link probe, and the SDK workload on the device. Argument lists and result parsing only; process
lifetime is `procs.Supervisor`'s, the link is `shaping`'s.
"""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Callable

from edgespec.sim.config import LinkShape
from edgespec.sim.netns import EDGE_IP, Lab
from edgespec.sim.procs import Proc, Supervisor
from edgespec.sim.shaping import Shaping
from edgespec.sim.workload import RESULT_PREFIX, parse_records

TARGET_PORT, DRAFT_PORT, PROBE_PORT = 50051, 50052, 7000
TARGET_ADDRESS = f"{EDGE_IP}:{TARGET_PORT}"
PROBE_TIMEOUT_S = 120.0


def _edgespec(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgespec", *args]


def launch_target(procs: Supervisor, lab: Lab, model: str, threads: int) -> Proc:
    """`edgespec target` on the edge's veth address (`procs.wait_ready` gives its HOST:PORT)."""
    argv = _edgespec("target", "--listen", f"{TARGET_ADDRESS}", "--insecure", "--model", model,  # a private lab link
                     "--threads", str(threads), "--grace", "2")
    return procs.launch_service("target", lab.edge, argv)


def launch_draft(procs: Supervisor, lab: Lab, model: str, threads: int, shaping: Shaping) -> Proc:
    """`edgespec draft` (+ orchestrator) on the device's loopback, dialing the target over the
    veth; with user-space delay its DelayProxy (`--emulate-*`) runs in this process too. The
    target's address is fixed, so both may load their models at the same time."""
    argv = _edgespec("draft", "--listen", f"127.0.0.1:{DRAFT_PORT}", "--target", TARGET_ADDRESS, "--model", model,
                     "--threads", str(threads), "--grace", "2", "--draft-length", "auto", "--k", "3")
    if shaping.proxy_link is not None:
        argv += ["--emulate-rtt", f"{shaping.proxy_link.rtt_ms:g}", "--emulate-jitter",
                 f"{shaping.proxy_link.jitter_ms:g}"]
    return procs.launch_service("draft", lab.device, argv)


def measure_link(procs: Supervisor, lab: Lab, shape: LinkShape, shaping: Shaping, quick: bool = False) -> dict:
    """RTT, rate and loss between the namespaces, through the same shaping the draft sees."""
    probe = [sys.executable, "-m", "edgespec.sim.probe"]
    server, address = procs.start_service("probe-server", lab.edge, [*probe, "serve", "--listen",
                                                                       f"{EDGE_IP}:{PROBE_PORT}"], 60.0)
    argv = [*probe, "measure", "--server", address, "--rate-hint", f"{shape.rate_mbit:g}"]
    if shaping.proxy_link is not None:
        argv += ["--rtt", f"{shaping.proxy_link.rtt_ms:g}", "--jitter", f"{shaping.proxy_link.jitter_ms:g}"]
    try:
        out = procs.run_client("probe", lab.device, argv + (["--quick"] if quick else []), PROBE_TIMEOUT_S)
    finally:
        procs.stop(server)
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def format_link(measured: dict) -> str:
    """Two lines: what the probe measured."""
    rtt = measured["tcp_rtt_ms"]
    return (f"measured link: TCP RTT p50 {rtt['p50']:.1f} ms (min {rtt['min']:.1f}, max {rtt['max']:.1f}; "
            f"{measured['tcp_path']}), rate up {measured['rate_up_mbit']:.1f} / down "
            f"{measured['rate_down_mbit']:.1f} Mbit/s\n"
            f"               loss {measured['loss_per_direction_pct']:.2f}% per direction "
            f"({measured['udp_sent'] - measured['udp_echoed']}/{measured['udp_sent']} UDP echoes lost)")


def run_workload(procs: Supervisor, lab: Lab, draft: str, jobs: list[dict], deadline_s: float,
                 on_record: Callable[[dict], None] = lambda record: None) -> list[dict]:
    """Run `jobs` through the SDK inside the device namespace; the job records, in order."""
    path = procs.workdir / "jobs.json"
    path.write_text(json.dumps(jobs))
    argv = [sys.executable, "-m", "edgespec.sim.workload", "--server", draft, "--jobs", str(path)]

    def on_output(line: str) -> None:
        if line.startswith(RESULT_PREFIX):
            on_record(json.loads(line))
    return parse_records(procs.run_client("workload", lab.device, argv, deadline_s, on_output))


def write_json(path: pathlib.Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))
