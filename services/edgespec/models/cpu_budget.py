"""How many CPUs this process may really use: the CPUs it may run on (affinity), capped by a cgroup
CPU quota (docker's `cpus:` / Kubernetes' CPU limit: cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`).
torch (and OpenMP) size their pools from the cores they see, not from the quota; a pool larger than
the quota spins and gets throttled. Reading only; it sets nothing.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def _quota_cpus(root: Path = CGROUP) -> float | None:
    """The CPU quota in CPUs (quota / period), or None when unlimited or unreadable."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]  # cgroup v2: "max 100000" or "200000 100000"
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())  # cgroup v1: -1 when unlimited
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def cpu_budget(root: Path = CGROUP) -> int:
    """CPUs available to this process: affinity, capped by the quota rounded up (at least 1)."""
    cpus = len(os.sched_getaffinity(0))
    quota = _quota_cpus(root)
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus
