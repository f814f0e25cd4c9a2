"""Import rules, enforced by walking every module's imports with `ast`:
edgespec.core imports no grpc/protobuf/transformers/opentelemetry/prometheus/zmq (nor other
edgespec layers, telemetry included);
edgespec_client imports no torch/transformers and nothing of edgespec but the edgespec.v1 stubs
(and of OpenTelemetry only the API);
only edgespec.rpc and the service packages touch grpc."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORE = ROOT / "services" / "edgespec" / "core"
CLIENT = ROOT / "client" / "edgespec_client"


def imports_of(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def violations(folder: pathlib.Path, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        for name in sorted(imports_of(path)):
            bad = any(name == f or name.startswith(f + ".") for f in forbidden)
            if bad and not any(name == a or name.startswith(a + ".") for a in allowed):
                found.append(f"{path.relative_to(folder.parent)} imports {name}")
    return found


def test_core_is_pure():
    forbidden = ("grpc", "grpc_health", "grpc_reflection", "google.protobuf", "transformers",
                 "opentelemetry", "prometheus_client", "zmq", "edgespec.v1", "edgespec.rpc", "edgespec.models",
                 "edgespec.target", "edgespec.draft", "edgespec.orchestrator", "edgespec.telemetry")
    assert violations(CORE, forbidden) == []


def test_sdk_depends_on_the_wire_contract_only():
    # the OpenTelemetry *API* is allowed (optional spans); exporters and the SDK are the application's
    forbidden = ("torch", "transformers", "numpy", "edgespec", "opentelemetry.sdk", "opentelemetry.exporter")
    assert violations(CLIENT, forbidden, allowed=("edgespec.v1",)) == []


@pytest.mark.parametrize("package", ["models", "core", "bench", "net"])
def test_grpc_stays_in_transport_and_services(package):
    assert violations(ROOT / "services" / "edgespec" / package, ("grpc", "edgespec.v1", "edgespec.rpc")) == []


def test_the_checker_can_fail(tmp_path):
    (tmp_path / "bad.py").write_text("import grpc\nfrom transformers import AutoModel\n")
    assert len(violations(tmp_path, ("grpc", "transformers"))) == 2
