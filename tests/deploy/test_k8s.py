"""The Kubernetes manifests of the target tier (deploy/k8s) render, validate and agree with the
code, offline. `kubectl kustomize` renders the base and every overlay; each rendered core object
validates against the Kubernetes JSON schemas of K8S_VERSIONS (PyPI kubernetes-validate, strict:
an unknown field fails, as `kubectl apply`'s field validation does); the custom resources (KEDA
ScaledObject, prometheus-operator ServiceMonitor) validate, as strictly, against their CRDs'
schemas as generated into the cloudcoil models. The container's args parse with the real CLI and
build its config; ports, probes, labels, selectors, env, shutdown budget, resources, TLS mounts
and the autoscaler's target and queries line up. test_k8s_runtime.py runs the probes and queries."""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import re

import jsonschema
import kubernetes_validate
import pytest
import yaml
from k8s_manifests import (AUTOSCALED, K8S, PROBES, ROOT, SERVED, TREES, VERIFIER, container, of_kind, one,
                           port_of, rendered, target_args)

from edgespec import cli, healthcheck, service_cli
from edgespec.telemetry.metrics import ServiceMetrics

K8S_VERSIONS = ("1.33.0", "1.37.0")   # the stated version, and the newest kubernetes-validate bundles
CRDS = {("keda.sh/v1alpha1", "ScaledObject"): "cloudcoil.models.keda.v1alpha1:ScaledObject",
        ("monitoring.coreos.com/v1", "ServiceMonitor"): "cloudcoil.models.prometheus_operator.v1:ServiceMonitor"}


@functools.cache
def _crd_schema(api_version: str, kind: str) -> dict:
    """The CRD's schema (generated into the cloudcoil model), strict like kubectl's field
    validation: an object that lists its properties admits no others."""
    module, name = CRDS[(api_version, kind)].split(":")
    schema = getattr(importlib.import_module(module), name).model_json_schema(by_alias=True)

    def strict(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                strict(value)
        elif isinstance(node, list):
            for value in node:
                strict(value)
    strict(schema)
    return schema


def _validate(obj: dict, version: str) -> None:
    key = (obj["apiVersion"], obj["kind"])
    if key in CRDS:
        jsonschema.validate(obj, _crd_schema(*key))
    else:  # SchemaNotFoundError for a kind that is neither core nor a listed CRD
        kubernetes_validate.validate(obj, version, strict=True)


# (a) render and validate -------------------------------------------------------------------------

def test_every_manifest_file_is_rendered_by_some_tree():
    listed = set()
    for kustomization in K8S.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        refs = [*spec.get("resources", []), *[p["path"] for p in spec.get("patches", []) if "path" in p]]
        listed |= {(kustomization.parent / ref).resolve() for ref in refs if ref.endswith(".yaml")}
    files = {p.resolve() for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert files and not (orphans := files - listed), f"manifests no kustomization uses: {orphans}"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("tree", sorted(TREES))
def test_rendered_objects_validate(tree, version):
    objects = rendered(tree)
    assert {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"} <= {o["kind"] for o in objects}
    for obj in objects:
        try:
            _validate(obj, version)
        except (jsonschema.ValidationError, kubernetes_validate.utils.SchemaNotFoundError) as exc:
            pytest.fail(f"{tree}: {obj['kind']}/{obj['metadata']['name']} invalid for Kubernetes {version}: "
                        f"{getattr(exc, 'message', exc)}")


@pytest.mark.parametrize("kind, path, typo", [("Deployment", ("spec", "template", "spec"), "terminationGracePeriod"),
                                              ("ScaledObject", ("spec",), "minReplicas"),
                                              ("ServiceMonitor", ("spec", "endpoints", 0), "intervall")])
def test_validation_rejects_an_unknown_field(kind, path, typo):
    obj = json.loads(json.dumps(one("gpu-external", kind)))
    node = obj
    for step in path:
        node = node[step]
    node[typo] = 1
    with pytest.raises(jsonschema.ValidationError):
        _validate(obj, K8S_VERSIONS[0])


def test_no_secret_material_is_committed():
    assert all(o["kind"] != "Secret" for tree in TREES for o in rendered(tree))
    for path in K8S.rglob("*"):
        if path.is_file():
            assert "PRIVATE KEY" not in path.read_text() and "BEGIN CERTIFICATE" not in path.read_text(), path


# (b) the container's command is edgespec's --------------------------------------------------------

@pytest.mark.parametrize("tree", sorted(TREES))
def test_args_parse_with_the_cli_and_build_a_target_config(tree):
    spec = container(tree)
    assert "command" not in spec, "the image's entrypoint (`edgespec`) runs the args"
    args = target_args(tree)
    assert args.command == "target"
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    known = {opt for action in sub.choices["target"]._actions for opt in action.option_strings}
    flags = [token.split("=", 1)[0] for token in spec["args"] if token.startswith("--")]
    assert not (unknown := [f for f in flags if f not in known]), f"abbreviated/unknown flags {unknown}"
    service_cli.target_config(args)   # the frozen config accepts the values (non-loopback: TLS or --insecure)
    assert re.search(rf"load_model\('{args.model}'", (ROOT / "deploy" / "Dockerfile").read_text())


@pytest.mark.parametrize("tree", sorted(TREES))
def test_ports_line_up(tree):
    args, spec = target_args(tree), container(tree)
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    assert args.listen == f"0.0.0.0:{ports['grpc']}" and args.metrics_listen == f"0.0.0.0:{ports['metrics']}"
    headless = one(tree, "Service", "edgespec-target-headless")["spec"]
    assert headless["clusterIP"] == "None" and not headless["publishNotReadyAddresses"]
    for port in headless["ports"]:  # no port mapping through a headless Service
        assert port["port"] == ports[port["targetPort"]], f"headless {port['name']}: port != container port"
    for rule in one(tree, "NetworkPolicy")["spec"]["ingress"]:
        assert all(p["port"] in ports for p in rule["ports"])
    for service in of_kind(tree, "Service"):
        assert all(p["targetPort"] in ports for p in service["spec"]["ports"])


@pytest.mark.parametrize("tree", sorted(TREES))
def test_probes_check_the_verifier_on_the_served_port(tree):
    args, spec = target_args(tree), container(tree)
    tls, services = args.tls_cert is not None, {}
    for name in PROBES:
        probe = spec[name]
        if "grpc" in probe:   # the kubelet's own gRPC probe: plaintext only
            assert not tls and args.insecure, f"{name}: a kubelet gRPC probe cannot check a TLS port"
            port, service = probe["grpc"]["port"], probe["grpc"]["service"]
        else:
            argv = probe["exec"]["command"]
            assert argv[:3] == ["python", "-m", "edgespec.healthcheck"] and tls
            check = healthcheck.build_parser().parse_args(argv[3:])
            assert (check.tls_ca, check.tls_cert, check.tls_key) == (args.tls_client_ca, args.tls_cert, args.tls_key)
            port, service = port_of(check.address), check.service
        assert port == port_of(args.listen) and service in SERVED, f"{name}: probes {service!r} on {port}"
        services[name] = service
    # draining turns the Verifier NOT_SERVING: readiness must watch it (liveness: the whole server)
    assert services == {"startupProbe": VERIFIER, "readinessProbe": VERIFIER, "livenessProbe": ""}


@pytest.mark.parametrize("tree", sorted(TREES))
def test_rolling_updates_drain_within_the_grace_period(tree):
    deployment = one(tree, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    pre_stop = container(tree)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] > pre_stop + target_args(tree).grace + 10, \
        "SIGKILL would cut sessions the target is still draining"
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert one(tree, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("tree", sorted(TREES))
def test_selectors_match_the_target_pods(tree):
    deployment = one(tree, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert one(tree, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    assert one(tree, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"] == selector
    for service in of_kind(tree, "Service"):
        assert service["spec"]["selector"] == selector, service["metadata"]["name"]
    if of_kind(tree, "ServiceMonitor"):
        monitor = one(tree, "ServiceMonitor")["spec"]
        scraped = [s for s in of_kind(tree, "Service")
                   if monitor["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
        assert [s["metadata"]["name"] for s in scraped] == ["edgespec-target-headless"]
        assert monitor["jobLabel"] in scraped[0]["metadata"]["labels"]
        assert {e["port"] for e in monitor["endpoints"]} <= {p["name"] for p in scraped[0]["spec"]["ports"]}


@pytest.mark.parametrize("tree", sorted(TREES))
def test_resources_threads_and_device(tree):
    args, spec = target_args(tree), container(tree)
    limits, requests = spec["resources"]["limits"], spec["resources"]["requests"]
    assert args.threads == int(limits["cpu"]) == int(requests["cpu"]), "torch threads follow the CPU quota"
    gpu = "gpu" in tree
    assert (args.device == "cuda") == gpu and ("nvidia.com/gpu" in limits) == gpu
    assert spec["image"] == ("edgespec:gpu" if gpu else "edgespec:latest")


@pytest.mark.parametrize("tree", sorted(TREES))
def test_env_vars_are_read_by_the_services(tree):
    for env in container(tree).get("env", []):
        readers = [p for p in (ROOT / "services").rglob("*.py") if f'"{env["name"]}"' in p.read_text()]
        assert readers, f"{env['name']} is read by no module under services/"


def test_external_tls_mounts_what_the_target_reads():
    args, spec = target_args("gpu-external"), container("gpu-external")
    assert not args.insecure
    volumes = {v["name"]: v for v in one("gpu-external", "Deployment")["spec"]["template"]["spec"]["volumes"]}
    mounted = {}
    for mount in spec["volumeMounts"]:
        assert "subPath" not in mount, "a subPath mount never sees a rotated Secret"
        for item in volumes[mount["name"]].get("secret", {}).get("items", []):
            mounted[f"{mount['mountPath']}/{item['path']}"] = volumes[mount["name"]]["secret"]["secretName"]
    for path in (args.tls_cert, args.tls_key, args.tls_client_ca, args.auth_tokens):
        assert path in mounted, f"{path} is not in a mounted Secret"
    readme = (K8S / "README.md").read_text()
    assert all(name in readme for name in set(mounted.values())), "README must say how to create the Secrets"
    external = one("gpu-external", "Service", "edgespec-target-external")["spec"]
    assert external["type"] == "LoadBalancer" and external["externalTrafficPolicy"] == "Local"
    assert any("from" not in rule for rule in one("gpu-external", "NetworkPolicy")["spec"]["ingress"])
    assert not any(s["spec"].get("type") == "LoadBalancer" for s in of_kind("gpu", "Service"))


# (c) autoscaling on saturation --------------------------------------------------------------------

def _triggers(tree: str) -> dict[str, dict]:
    return {t["name"]: t for t in one(tree, "ScaledObject")["spec"]["triggers"]}


@pytest.mark.parametrize("tree", AUTOSCALED)
def test_scaled_object_drives_the_deployment(tree):
    spec = one(tree, "ScaledObject")["spec"]
    assert spec["scaleTargetRef"]["name"] == one(tree, "Deployment")["metadata"]["name"]
    assert "replicas" not in one(tree, "Deployment")["spec"], "re-applying would fight the autoscaler"
    assert 2 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    assert set(_triggers(tree)) == {"kv-pool-utilization", "verify-queue-wait"}
    for trigger in _triggers(tree).values():
        assert trigger["type"] == "prometheus" and trigger["metricType"] == "Value"
        assert set(trigger["metadata"]) == {"serverAddress", "query", "threshold"}   # KEDA's prometheus scaler
        float(trigger["metadata"]["threshold"])
        query = trigger["metadata"]["query"]
        assert set(re.findall(r'namespace="([^"]*)"', query)) == {one(tree, "Deployment")["metadata"]["namespace"]}
        assert set(re.findall(r'job="([^"]*)"', query)) == {"edgespec-target"}
        assert "service=" not in query, "the operator renames edgespec's `service` label to exported_service"
        assert set(re.findall(r"edgespec_\w+", query)) <= ServiceMetrics().names()
    monitor = one(tree, "Service", "edgespec-target-headless")["metadata"]["labels"]
    assert monitor[one(tree, "ServiceMonitor")["spec"]["jobLabel"]] == "edgespec-target"


@pytest.mark.parametrize("tree", sorted(TREES))
def test_connections_age_out_so_devices_reach_new_replicas(tree):
    """--max-connection-age is set and longer than the drain grace (an aged-out stream gets the
    grace, then resumes elsewhere); the README's device command names the headless Service in a
    form the orchestrator's --target accepts."""
    from edgespec.rpc.targets import parse_upstream
    args = target_args(tree)
    assert args.max_connection_age is not None and args.max_connection_age > args.grace
    headless = next(s for s in of_kind(tree, "Service") if s["spec"].get("clusterIP") == "None")["metadata"]
    dialled = re.findall(r"--target (dns:///\S+)", (K8S / "README.md").read_text())
    assert dialled and all(parse_upstream(d).target == d for d in dialled)
    assert all(d.startswith(f"dns:///{headless['name']}.") for d in dialled)
