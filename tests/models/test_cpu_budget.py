"""cpu_budget: torch's default pool follows a container's CPU quota (cgroup v2 and v1 files), never
exceeds the CPUs this process may run on, and is the affinity when there is no quota."""

from __future__ import annotations

import os

import pytest
import torch

from edgespec.models import cpu_budget as budget
from edgespec.models.loading import set_threads

AFFINITY = len(os.sched_getaffinity(0))


def _v2(root, text):
    (root / "cpu.max").write_text(text)
    return root


def _v1(root, quota, period=100000):
    (root / "cpu").mkdir()
    (root / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text(f"{period}\n")
    return root


@pytest.mark.parametrize("make, expected", [
    (lambda r: _v2(r, "100000 100000\n"), 1),          # cpus: 1.0
    (lambda r: _v2(r, "150000 100000\n"), min(2, AFFINITY)),  # cpus: 1.5 -> rounded up
    (lambda r: _v2(r, "max 100000\n"), AFFINITY),       # no quota
    (lambda r: _v1(r, 50000), 1),                       # cpus: 0.5 -> at least one
    (lambda r: _v1(r, -1), AFFINITY),                   # v1 unlimited
    (lambda r: r, AFFINITY),                            # no cgroup files at all
])
def test_budget_follows_the_quota_capped_by_affinity(tmp_path, make, expected):
    assert budget.cpu_budget(make(tmp_path)) == expected


def test_quota_above_the_cores_is_capped_by_affinity(tmp_path):
    assert budget.cpu_budget(_v2(tmp_path, f"{(AFFINITY + 8) * 100000} 100000")) == AFFINITY


def test_set_threads_default_follows_the_budget(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr("edgespec.models.loading.cpu_budget", lambda: 1)
        set_threads(0)
        assert torch.get_num_threads() == 1
        set_threads(2)  # an explicit --threads wins
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
