"""Fixtures of the namespace-lab tests."""

from __future__ import annotations

import pytest
from lab_checks import my_namespaces


@pytest.fixture
def no_stray_labs():
    """Fails a test that leaves any lab of this process behind."""
    yield
    assert not my_namespaces(), f"namespaces left behind: {my_namespaces()}"
