"""What a server process holds right now — resident memory, threads, open file descriptors — read
from Linux's /proc, for `bench soak` and `bench fuzz`. Reading only; it judges nothing.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ProcStats:
    rss_mb: float
    threads: int
    fds: int

    def to_dict(self) -> dict:
        return asdict(self)


def proc_stats(pid: int) -> ProcStats:
    """The process's VmRSS (MiB), thread count and open fds (raises OSError once it is gone)."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return ProcStats(int(fields["VmRSS"][0]) / 1024, int(fields["Threads"][0]), len(os.listdir(f"/proc/{pid}/fd")))
