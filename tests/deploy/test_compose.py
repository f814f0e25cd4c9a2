"""The deployment files agree with the code: docker-compose.yml validates, every edgespec service
command parses with the real CLI, ports/healthchecks line up (the draft's through the edge-link
sidecar that owns its network namespace), the sidecar (`python -m edgespec.sim.edge_link`) gets
every EDGE_* variable and its compose defaults parse, env vars are read by the services, the observability placeholders point at real files and
services, and `python -m edgespec.healthcheck` answers as compose expects. No Docker engine."""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import re
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from edgespec import cli, healthcheck, service_cli
from edgespec.sim.edge_link import EdgeLinkConfig
from edgespec.v1 import draft_pb2, orchestrator_pb2, target_pb2

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SOURCES = ROOT / "services"

# Services each serving subcommand registers with the health servicer ("" = the whole server).
SERVED = {
    "target": {"", target_pb2.DESCRIPTOR.services_by_name["Verifier"].full_name},
    "draft": {"", draft_pb2.DESCRIPTOR.services_by_name["Drafter"].full_name,
              orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"].full_name},
    "orchestrator": {"", orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"].full_name},
}
CONFIGS = {"target": service_cli.target_config, "draft": service_cli.draft_config,
           "orchestrator": service_cli.orchestrator_config}
# Env vars read by a runtime library rather than by services/: name -> who reads it.
RUNTIME_ENV = {"OMP_NUM_THREADS": "libgomp / torch intra-op thread pool"}
SDK_ENV = {"OTEL_TRACES_SAMPLER": "opentelemetry.sdk.environment_variables"}  # TracerProvider's sampler
SIDECAR, OBSERVABILITY = "edge-link", {"jaeger", "prometheus", "grafana"}
EDGE_VARS = {"EDGE_DELAY", "EDGE_JITTER", "EDGE_LOSS", "EDGE_RATE", "EDGE_MECHANISM"}


def _all_services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _services() -> dict[str, dict]:
    """The services running an edgespec subcommand (deploy/Dockerfile's image and entrypoint)."""
    return {name: s for name, s in _all_services().items()
            if isinstance(s.get("build"), dict) and s["build"].get("dockerfile") == "deploy/Dockerfile"
            and "entrypoint" not in s}


def _published(name: str, services: dict) -> list:
    """Ports published for `name`: its own, or those of the service whose namespace it joins."""
    mode = services[name].get("network_mode", "")
    owner = mode.removeprefix("service:") if mode.startswith("service:") else name
    return services[owner].get("ports", [])


def _args(name: str, service: dict):
    try:
        return cli.build_parser().parse_args(service["command"])
    except SystemExit:
        pytest.fail(f"{name}: `edgespec {' '.join(service['command'])}` is rejected by the CLI parser")


def _exact_flags(name: str, command: list[str]) -> None:
    """argparse accepts unambiguous prefixes (`--dev`); a deployment file spells flags in full."""
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    known = {opt for action in sub.choices[command[0]]._actions for opt in action.option_strings}
    flags = [token.split("=", 1)[0] for token in command[1:] if token.startswith("--")]
    assert not (unknown := [f for f in flags if f not in known]), f"{name}: abbreviated/unknown flags {unknown}"


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _healthcheck_argv(name: str, service: dict) -> list[str]:
    test = service["healthcheck"]["test"]
    prefix = ["CMD", "python", "-m", "edgespec.healthcheck"]
    assert test[:4] == prefix, f"{name}: healthcheck must be {prefix} + args, got {test}"
    return test[4:]


# (a) the compose file validates -----------------------------------------------------------------

@pytest.mark.parametrize("profile", [None, "gpu", "observability"])
def test_compose_config_validates(profile):
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose binary not installed (apt-get install -y docker-compose)")
    argv = [binary, "-f", str(COMPOSE), *(["--profile", profile] if profile else []), "config", "-q"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# (b) commands are real edgespec subcommands with flags the CLI accepts --------------------------

def test_image_entrypoint_is_edgespec():
    entrypoints = re.findall(r"^ENTRYPOINT\s+(.+)$", DOCKERFILE.read_text(), re.M)
    assert [json.loads(e) for e in entrypoints] == [["edgespec"]]


def test_build_context_keeps_what_the_dockerfile_copies():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)$", text, re.M))
    lines = re.findall(r"^COPY\s+(?!--from=)(.+)$", text, re.M)  # --from: another stage
    copied = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], src) for line in lines for src in line.split()[:-1]]
    assert copied and not ignored & set(copied), f".dockerignore drops {ignored & set(copied)}, which the Dockerfile copies"
    wheelhouse = args["WHEELHOUSE"]  # filled by `make wheelhouse`, not committed
    assert f"!{wheelhouse}*" in ignored and f"WHEELHOUSE ?= {wheelhouse}" in (ROOT / "Makefile").read_text()
    assert all((ROOT / src).exists() for src in copied if not src.startswith(wheelhouse))


@pytest.mark.parametrize("name", sorted(_services()))
def test_command_parses_with_the_cli(name):
    service = _services()[name]
    assert service["build"]["context"] == "." and service["build"]["dockerfile"] == "deploy/Dockerfile"
    args = _args(name, service)
    _exact_flags(name, service["command"])
    assert args.command in SERVED, f"{name}: {args.command!r} is not a serving subcommand"
    CONFIGS[args.command](args)  # the frozen config accepts the values (its own validation)
    model_cached = re.search(rf"load_model\('{re.escape(args.model)}'", DOCKERFILE.read_text())
    assert model_cached, f"{name}: model {args.model!r} is not cached at image build (containers run offline)"


# (c) ports line up -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(_services()))
def test_listen_healthcheck_and_published_ports_line_up(name):
    service = _services()[name]
    args = _args(name, service)
    host, port = args.listen.rsplit(":", 1)
    assert host == "0.0.0.0", f"{name}: listen on 0.0.0.0, not {host}, or nothing outside the container reaches it"
    probe = healthcheck.build_parser().parse_args(_healthcheck_argv(name, service))
    assert _port(probe.address) == int(port), f"{name}: healthcheck probes {probe.address}, server listens on {port}"
    assert probe.service in SERVED[args.command], f"{name}: {probe.service!r} is not served by `{args.command}`"
    for mapping in _published(name, _all_services()):
        assert int(str(mapping).rsplit(":", 1)[-1]) == int(port), f"{name}: publishes {mapping}, listens on {port}"


@pytest.mark.parametrize("name", sorted(n for n, s in _services().items() if "--target" in s["command"]))
def test_target_address_names_a_healthy_target_service(name):
    services = _services()
    args = _args(name, services[name])
    host, port = args.target.rsplit(":", 1)
    assert host in services, f"{name}: --target {args.target} names no compose service"
    target_args = _args(host, services[host])
    assert target_args.command == "target", f"{name}: --target points at `{target_args.command}`"
    assert int(port) == _port(target_args.listen), \
        f"{name}: --target {args.target}, but {host} listens on {target_args.listen}"
    assert services[name]["depends_on"][host] == {"condition": "service_healthy"}


def test_draft_is_an_edge_device_with_a_published_sdk_port():
    services = _all_services()
    draft = services["draft"]
    assert draft["cpus"] == 1.0 and draft["mem_limit"] == "4g"
    assert "--threads" not in draft["command"], "torch's pool follows the cpus quota (cpu_budget)"
    assert "ports" not in draft, "a service in another's network namespace cannot publish ports"
    assert "50052:50052" in _published("draft", services)


# (c') the edge-link netem sidecar owns the draft's network namespace ------------------------------

def test_draft_joins_the_edge_link_namespace_once_it_is_shaped():
    services = _all_services()
    assert services["draft"]["network_mode"] == f"service:{SIDECAR}"
    assert services["draft"]["depends_on"][SIDECAR] == {"condition": "service_healthy"}
    ready_file = EdgeLinkConfig.ready_file  # written by edge_link once the link is shaped and measured
    assert services[SIDECAR]["healthcheck"]["test"] == ["CMD", "test", "-s", ready_file]


def _compose_defaults(environment: dict[str, str]) -> dict[str, str]:
    """`${VAR:-default}` -> default, as compose substitutes with VAR unset."""
    return {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(v)) for k, v in environment.items()}


def test_sidecar_shapes_the_link_from_the_edge_variables():
    sidecar = _all_services()[SIDECAR]
    assert sidecar["cap_add"] == ["NET_ADMIN"] and sidecar["init"] is True and sidecar["user"] == "root"
    assert sidecar["entrypoint"] == ["python", "-m", "edgespec.sim.edge_link"]
    assert sidecar["build"] == _services()["target"]["build"], "the sidecar runs the edgespec image (tc, nft, ping)"
    env = sidecar["environment"]
    assert all(env[name] == f"${{{name}:-{_compose_defaults(env)[name]}}}" for name in EDGE_VARS)
    config = EdgeLinkConfig.from_env(_compose_defaults(env))  # the defaults parse
    assert (config.delay_ms, config.loss_pct, config.mechanism) == (40.0, 0.0, "auto") and config.rate_mbit > 0
    host, port = config.target.rsplit(":", 1)
    assert int(port) == _port(_args(host, _services()[host]).listen) == _port(_args("draft", _services()["draft"]).target)
    dockerfile = DOCKERFILE.read_text()
    assert all(package in dockerfile for package in ("iproute2", "nftables", "iputils-ping"))


def test_every_compose_variable_is_consumed():
    """Each ${VAR} in the compose file is used by the sidecar's command or read by services/."""
    text = COMPOSE.read_text()
    for name in set(re.findall(r"\$\{(\w+)", text)):
        used = any(name in _code_strings(p) for p in SOURCES.rglob("*.py"))
        assert used, f"${{{name}}} in docker-compose.yml is consumed by nothing"
    assert EDGE_VARS <= set(re.findall(r"\$\{(\w+)", text))


def test_docs_explain_that_netem_shapes_egress_only():
    for text in (COMPOSE.read_text(), (ROOT / "deploy" / "README.md").read_text()):
        assert "egress" in text.lower() and "EDGE_DELAY" in text


# (c'') observability placeholders ------------------------------------------------------------------

def test_observability_services_are_optional_and_their_files_exist():
    services = _all_services()
    assert OBSERVABILITY <= set(services)
    for name in OBSERVABILITY:
        assert services[name]["profiles"] == ["observability"], f"{name} must not start by default"
        for volume in services[name].get("volumes", []):
            source = ROOT / volume.split(":", 1)[0]
            assert source.is_file(), f"{name}: mounts {source}, which does not exist"
            yaml.safe_load(source.read_text())


def test_grafana_datasources_name_compose_services_and_ports():
    services = _all_services()
    datasources = yaml.safe_load((ROOT / "deploy" / "observability" / "grafana-datasources.yml").read_text())
    for source in datasources["datasources"]:
        host, port = source["url"].removeprefix("http://").split(":")
        assert host in services, f"datasource {source['name']} points at {host}, no such service"
        assert any(str(m).endswith(f":{port}") for m in services[host]["ports"]), f"{host} does not serve :{port}"


def test_gpu_variant_reserves_a_gpu_and_uses_cuda():
    gpu = _services()["target-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert _args("target-gpu", gpu).device == "cuda"
    declared = set(re.findall(r"^ARG\s+(\w+)", DOCKERFILE.read_text(), re.M))
    assert set(gpu["build"].get("args", {})) <= declared


# (d) every env var set is read by the services ---------------------------------------------------

def _env_names() -> set[str]:
    names = set()
    for service in [*_services().values(), _all_services()[SIDECAR]]:
        env = service.get("environment") or {}
        names |= set(env) if isinstance(env, dict) else {item.split("=", 1)[0] for item in env}
    dockerfile_env = re.findall(r"\b(EDGESPEC_\w+)=", DOCKERFILE.read_text())
    return names | set(dockerfile_env)


def _code_strings(path: Path) -> set[str]:
    """String constants a module's code uses: docstrings and comments do not count."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings}


@pytest.mark.parametrize("name", sorted(_env_names()))
def test_env_var_is_read_by_the_services(name):
    if name in RUNTIME_ENV:
        pytest.skip(f"{name} is read by {RUNTIME_ENV[name]}, not by services/")
    if name in SDK_ENV:  # read inside the library the services call: check that the library declares it
        assert getattr(importlib.import_module(SDK_ENV[name]), name) == name
        return
    readers = [p for p in SOURCES.rglob("*.py") if name in _code_strings(p)]
    assert readers, f"{name} is set in the deployment files but no module under services/ reads it"


# python -m edgespec.healthcheck, as the compose healthcheck runs it -------------------------------

@pytest.fixture(scope="module")
def health_server():
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("0.0.0.0:0")  # as the containers bind
    server.start()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("edgespec.v1.Verifier", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("draining", health_pb2.HealthCheckResponse.NOT_SERVING)
    yield port
    server.stop(0)


def _probe(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgespec.healthcheck", *argv],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("service", ["", "edgespec.v1.Verifier"])
def test_healthcheck_serving_exits_0(health_server, service):
    done = _probe(f"localhost:{health_server}", "--service", service)
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.parametrize("service, reason", [("draining", "NOT_SERVING"), ("nope", "NOT_FOUND")])
def test_healthcheck_not_serving_exits_1_with_one_line(health_server, service, reason):
    done = _probe(f"127.0.0.1:{health_server}", "--service", service)
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1 and reason in done.stderr


def test_healthcheck_unreachable_exits_1_with_one_line():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = _probe(f"127.0.0.1:{port}", "--timeout", "2")
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1 and "UNAVAILABLE" in done.stderr


def test_healthcheck_imports_no_torch():
    code = "import sys, edgespec.healthcheck; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0
