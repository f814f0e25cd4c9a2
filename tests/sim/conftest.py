"""Fixtures of the namespace-lab tests."""

from __future__ import annotations

import pytest
from lab_checks import my_namespaces


@pytest.fixture
def no_stray_labs():
    """Fails a test that leaves any lab of this process behind."""
    yield
    assert not my_namespaces(), f"namespaces left behind: {my_namespaces()}"


@pytest.fixture
def record_sh(monkeypatch):
    """`record_sh(module)`: the commands `module` would run through its `sh` from now on, each
    recorded and answered as a success."""
    calls: list[tuple[str, ...]] = []

    def fake_sh(*argv, check=True, timeout=30.0):
        calls.append(argv)
        return type("Done", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    def install(module) -> list[tuple[str, ...]]:
        monkeypatch.setattr(module, "sh", fake_sh)
        return calls
    return install
