"""docker-compose.yml brought up for real: on a running Docker engine, else on a `dockerd` started
here (docker_engine.py); the base image made from debootstrap where it cannot be pulled
(deploy/images/base-image.sh); the wheelhouse filled on the host (`make wheelhouse`) and the image
built with no network inside the build (`make image`: `--network none`); Prometheus from Debian's
package, tagged as the compose file's image (deploy/images/prometheus.sh); `edgespec trace-sink`
standing in at jaeger:4317. `target` + `edge-link` + `draft` come up with a 40 ms emulated RTT and
must: answer `edgespec generate` through the published port with the target-only tokens (greedy),
measure an RTT >= 40 ms on the draft's path, be scraped (up == 1 for both jobs), and export spans of
one trace from both services. Everything is torn down (containers, networks, the images built, the
daemon we started and what it changed on the host) and checked. Skips only where no engine can run.
Timing goals live in `edgespec bench`; the tokens/s printed here are for the deploy README.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from docker_engine import DockerEngine, NoEngine, run

pytestmark = pytest.mark.timeout(600)  # the first test also pays for the build (about 4-6 min cold)
ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROJECT = f"esup{os.getpid()}"
PROMPT, TOKENS, RTT_MS = "Why is the sky blue?", 64, 40
SPINE = ["target", "edge-link", "draft"]
STAND_INS = """services:
  jaeger:  # edgespec trace-sink stands in for Jaeger at jaeger:4317 (no registry here)
    image: edgespec:latest
    entrypoint: ["edgespec"]
    command: ["trace-sink", "--listen", "0.0.0.0:4317", "--insecure", "--out", "/tmp/spans.jsonl"]
"""
EDGESPEC = [sys.executable, "-m", "edgespec"]


def _images(engine: DockerEngine) -> set[str]:
    out = run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], env=engine.env).stdout
    return set(out.split())


def _compose_image(service: str) -> str:
    import yaml
    return yaml.safe_load(COMPOSE.read_text())["services"][service]["image"]


class Stack:
    """One compose project on `engine`; `down()` removes it and the images it made."""

    def __init__(self, engine: DockerEngine, workdir: Path) -> None:
        self.engine, self.workdir = engine, workdir
        override = workdir / "stand-ins.yml"
        override.write_text(STAND_INS)
        self.env = {**engine.env, "EDGE_DELAY": f"{RTT_MS}ms", "EDGE_JITTER": "0ms",
                    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317", "OTEL_BSP_SCHEDULE_DELAY": "1000"}
        self.compose = ["docker-compose", "-p", PROJECT, "-f", str(COMPOSE), "-f", str(override),
                        "--profile", "observability"]
        self.images_before = _images(engine)

    def build(self) -> dict[str, float]:
        timings = {}
        start = time.monotonic()
        cache = os.environ.get("EDGESPEC_BASE_CACHE", "")  # optional: a rootfs tarball kept between runs
        run(["bash", "deploy/images/base-image.sh"], env={**self.env, "BASE_CACHE": cache}, cwd=ROOT, timeout=600)
        timings["base image"] = time.monotonic() - start
        start = time.monotonic()
        run(["make", "-s", "wheelhouse", f"PYTHON={sys.executable}"], env=self.env, cwd=ROOT, timeout=900)
        timings["wheelhouse"] = time.monotonic() - start
        start = time.monotonic()
        run(["make", "-s", "image", "DOCKER=docker"], env=self.env, cwd=ROOT, timeout=900)
        timings["image (offline)"] = time.monotonic() - start
        start = time.monotonic()
        run(["bash", "deploy/images/prometheus.sh"], env=self.env, cwd=ROOT, timeout=300)
        timings["prometheus image"] = time.monotonic() - start
        return timings

    def up(self) -> float:
        start = time.monotonic()
        run([*self.compose, "up", "-d", "--no-build", "jaeger", *SPINE], env=self.env, cwd=ROOT, timeout=600)
        run([*self.compose, "up", "-d", "--no-build", "--no-deps", "prometheus"], env=self.env, cwd=ROOT, timeout=120)
        deadline = time.monotonic() + 300  # `up -d` returns before the draft has loaded its model
        while (health := self.health()) != {name: "healthy" for name in SPINE}:
            assert time.monotonic() < deadline and "unhealthy" not in health.values(), f"not healthy: {health}"
            time.sleep(2)
        return time.monotonic() - start

    def health(self) -> dict[str, str]:
        return {name: run(["docker", "inspect", "-f", "{{.State.Health.Status}}", self.container(name)],
                          env=self.env).stdout.strip() for name in SPINE}

    def container(self, service: str) -> str:
        return run([*self.compose, "ps", "-q", service], env=self.env, cwd=ROOT).stdout.strip()

    def exec(self, service: str, *argv: str) -> str:
        return run(["docker", "exec", self.container(service), *argv], env=self.env).stdout

    def logs(self) -> str:
        return run([*self.compose, "logs", "--no-color", "--tail", "30"], env=self.env, cwd=ROOT, check=False).stdout

    def down(self) -> None:
        run([*self.compose, "down", "-v", "--remove-orphans", "--timeout", "20"], env=self.env, cwd=ROOT, check=False)
        made = _images(self.engine) - self.images_before
        if made:
            run(["docker", "rmi", "-f", *sorted(made)], env=self.env, check=False)
        run(["docker", "image", "prune", "-f"], env=self.env, check=False)

    def leftovers(self) -> list[str]:
        label = f"label=com.docker.compose.project={PROJECT}"
        found = run(["docker", "ps", "-aq", "--filter", label], env=self.env, check=False).stdout.split()
        found += run(["docker", "network", "ls", "-q", "--filter", label], env=self.env, check=False).stdout.split()
        found += sorted(_images(self.engine) - self.images_before)
        return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    for tool in ("docker-compose", "make", "apt-get"):
        assert shutil.which(tool), f"{tool} is needed to build and run the stack (.ci/run installs it)"
    workdir = tmp_path_factory.mktemp("compose-up")
    try:
        engine = DockerEngine.find_or_start(workdir)
    except NoEngine as reason:
        print(f"\ntest_compose_up: skipped: {reason}")
        pytest.skip(str(reason))
    up = None
    try:
        up = Stack(engine, workdir)
        up.timings = up.build()
        up.timings["up to healthy"] = up.up()
        yield up
    except AssertionError:
        if up is not None:
            print(up.logs())
        raise
    finally:
        if up is not None:
            up.down()
            assert not up.leftovers(), f"compose teardown left {up.leftovers()}"
        engine.stop()
        assert not engine.host_changes(), f"the daemon we started left {engine.host_changes()}"
        print(f"\ntest_compose_up timings (s): { {k: round(v, 1) for k, v in getattr(up, 'timings', {}).items()} }")


def _generate(*extra: str) -> dict:
    done = run([*EDGESPEC, "generate", "--server", "localhost:50052", "--prompt", PROMPT, "--max-new-tokens",
                str(TOKENS), "--json", *extra], timeout=300)
    return json.loads(done.stdout)


def test_generation_through_the_published_port_matches_target_only(stack):
    speculative = _generate()
    reference = _generate("--draft-length", "server")  # the target alone, greedy
    assert speculative["stats"]["rounds"] > 0 and reference["stats"]["rounds"] == 0
    assert len(speculative["token_ids"]) == TOKENS
    assert speculative["token_ids"] == reference["token_ids"]
    round_trip = speculative["stats"]["round_trip_ms"]["p50"]
    assert round_trip >= RTT_MS, f"a speculative round took {round_trip} ms, under the emulated RTT"
    print(f"\ncompose: {speculative['stats']['tokens_per_second']:.2f} tokens/s speculative, "
          f"{reference['stats']['tokens_per_second']:.2f} target-only; round trip p50 {round_trip:.1f} ms")


def test_edge_link_measured_the_emulated_rtt_on_the_drafts_path(stack):
    report = json.loads(stack.exec("edge-link", "cat", "/tmp/edge-link.ready"))
    assert report["mechanism"] in ("netem", "userspace")
    assert report["asked"]["delay_ms"] == RTT_MS
    rtt = report["achieved"]["rtt_ms"]
    assert rtt["min"] >= RTT_MS and rtt["p50"] < RTT_MS + 50, rtt
    assert report["achieved"]["loss_pct"] == 0.0 and report["achieved"]["rate_up_mbit"] > 1
    print(f"\nedge-link: {report['mechanism']}, measured {report['achieved']}")


def _query(expr: str) -> list[dict]:
    url = f"http://localhost:9090/api/v1/query?query={urllib.request.quote(expr)}"
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.load(reply)["data"]["result"]


def test_prometheus_scrapes_both_jobs(stack):
    assert stack.container("prometheus"), "prometheus did not start"
    deadline, up = time.monotonic() + 90, {}
    while time.monotonic() < deadline:
        try:
            up = {r["metric"]["job"]: r["value"][1] for r in _query("up")}
        except OSError:
            up = {}
        if up == {"edgespec-target": "1", "edgespec-draft": "1"}:
            break
        time.sleep(2)
    assert up == {"edgespec-target": "1", "edgespec-draft": "1"}
    assert _query('count({__name__=~"edgespec_.+", job="edgespec-draft"})'), "no edgespec_* series from the draft"


def test_both_services_export_spans_of_one_trace(stack):
    _generate("--max-new-tokens", "8")
    deadline, services_of = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        spans = [json.loads(line) for line in stack.exec("jaeger", "cat", "/tmp/spans.jsonl").splitlines() if line]
        services_of = {}
        for span in spans:
            services_of.setdefault(span["trace_id"], set()).add(span["service"])
        if any({"edgespec-target", "edgespec-draft"} <= s for s in services_of.values()):
            break
        time.sleep(2)
    assert any({"edgespec-target", "edgespec-draft"} <= s for s in services_of.values()), services_of
