"""The target tier's manifests at work, offline: the probes of deploy/k8s run as the kubelet
would run them against a real edgespec server started from the manifest's own flags (plaintext
gRPC probes in the cluster, readiness failing on drain; exec probes over mTLS + tokens for the
external endpoint, where a plaintext probe fails), and promtool evaluates the ScaledObject's
saturation queries on series named as ServiceMetrics names them."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import trustme
import yaml
from k8s_manifests import NAMESPACE, PROBES, VERIFIER, container, one, port_of

from edgespec import cli, service_cli
from edgespec.rpc.server import start_server


def _trigger(name: str, tree: str = "cpu") -> dict:
    """A ScaledObject trigger's metadata (serverAddress, query, threshold)."""
    return next(t["metadata"] for t in one(tree, "ScaledObject")["spec"]["triggers"] if t["name"] == name)


# (a) the saturation queries on Prometheus ----------------------------------------------------------

def _series(name: str, pod: str, values: str, namespace: str = NAMESPACE) -> dict:
    return {"series": f'{name}{{job="edgespec-target",namespace="{namespace}",pod="{pod}",exported_service="target"}}',
            "values": values}


def test_saturation_queries_compute_on_prometheus(tmp_path):
    """promtool evaluates both queries: pooled KV use 0.75 (pods at 0.5 and 1.0, a pod of another
    namespace ignored), mean queue wait 60 ms (100 ms and 20 ms per block), 0 when idle."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install -y prometheus)")
    kv, queue = (_trigger(n)["query"] for n in ("kv-pool-utilization", "verify-queue-wait"))
    queue_s, count_s = "edgespec_verify_queue_seconds_sum", "edgespec_verify_queue_seconds_count"
    busy = [_series("edgespec_kv_cache_used_tokens", "a", "8192x20"),
            _series("edgespec_kv_cache_capacity_tokens", "a", "16384x20"),
            _series("edgespec_kv_cache_used_tokens", "b", "16384x20"),
            _series("edgespec_kv_cache_capacity_tokens", "b", "16384x20"),
            _series("edgespec_kv_cache_used_tokens", "c", "0x20", namespace="other"),
            _series("edgespec_kv_cache_capacity_tokens", "c", "16384x20", namespace="other"),
            _series(queue_s, "a", "0+0.1x20"), _series(count_s, "a", "0+1x20"),
            _series(queue_s, "b", "0+0.02x20"), _series(count_s, "b", "0+1x20"),
            _series(queue_s, "c", "0+9x20", namespace="other"), _series(count_s, "c", "0+1x20", namespace="other")]
    idle = [_series(queue_s, "a", "5x20"), _series(count_s, "a", "50x20")]

    def case(series, expected):  # each query within 1e-9 of its value (promtool compares floats exactly)
        return {"interval": "15s", "input_series": series, "promql_expr_test": [
            {"expr": f"abs(({query}) - {value}) < bool 1e-9", "eval_time": "4m",
             "exp_samples": [{"labels": "{}", "value": 1}]} for query, value in expected]}
    spec = {"rule_files": [], "evaluation_interval": "15s",
            "tests": [case(busy, [(kv, 0.75), (queue, 0.06)]), case(idle, [(queue, 0)])]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(spec))
    done = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert float(_trigger("kv-pool-utilization")["threshold"]) < 0.75, "the busy case must scale up"


# (b) the probes, run against a real server started from the manifest's flags ----------------------

def _remap(argv: list[str], files: dict[str, Path], port: int | None = None) -> list[str]:
    """The manifest's argv with Secret paths replaced by test files and port 50051 by `port`."""
    out = [str(files.get(token, token)) for token in argv]
    return [re.sub(r":50051$", f":{port}", token) for token in out] if port is not None else out


async def _probe(argv: list[str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(sys.executable, *argv, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, stderr.decode()


async def _serve(tree: str, files: dict[str, Path]):
    args = cli.build_parser().parse_args(_remap(container(tree)["args"], files, port=0))
    return await start_server(service_cli.server_options(args), lambda server: [VERIFIER])


def _kubelet_grpc_probe(probe: dict, port: int) -> list[str]:
    """What the kubelet's gRPC probe does: a plaintext Health/Check of `service` on the pod's port."""
    return ["-m", "edgespec.healthcheck", f"127.0.0.1:{port}", "--service", probe["grpc"]["service"]]


async def test_grpc_probes_pass_on_the_plaintext_target_and_readiness_fails_on_drain():
    running = await _serve("cpu", {})
    port = port_of(running.address)
    try:
        spec = container("cpu")
        for name in PROBES:
            assert await _probe(_kubelet_grpc_probe(spec[name], port)) == (0, ""), name
        await running.health.enter_graceful_shutdown()   # what SIGTERM does first
        code, stderr = await _probe(_kubelet_grpc_probe(spec["readinessProbe"], port))
        assert code == 1 and "NOT_SERVING" in stderr
    finally:
        await running.server.stop(0)


async def test_exec_probes_pass_on_the_mtls_target_where_a_kubelet_grpc_probe_cannot(tmp_path):
    ca = trustme.CA()
    leaf = ca.issue_cert("edgespec-target-headless", "edgespec.example.net")
    files = {"/etc/edgespec/tls/tls.crt": tmp_path / "tls.crt", "/etc/edgespec/tls/tls.key": tmp_path / "tls.key",
             "/etc/edgespec/tls/ca.crt": tmp_path / "ca.crt", "/etc/edgespec/tokens/tokens": tmp_path / "tokens"}
    leaf.cert_chain_pems[0].write_to_path(files["/etc/edgespec/tls/tls.crt"])
    leaf.private_key_pem.write_to_path(files["/etc/edgespec/tls/tls.key"])
    ca.cert_pem.write_to_path(files["/etc/edgespec/tls/ca.crt"])
    files["/etc/edgespec/tokens/tokens"].write_text("0123456789abcdef0123456789abcdef device-1\n")
    running = await _serve("gpu-external", files)
    port = port_of(running.address)
    try:
        spec = container("gpu-external")
        for name in PROBES:
            argv = _remap(spec[name]["exec"]["command"], files, port)
            assert argv[0] == "python"
            assert await _probe(argv[1:]) == (0, ""), name
        plaintext = {"grpc": {"service": VERIFIER}}
        assert (await _probe(_kubelet_grpc_probe(plaintext, port)))[0] == 1
    finally:
        await running.server.stop(0)
