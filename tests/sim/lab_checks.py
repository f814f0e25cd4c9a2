"""Helpers of the namespace-lab tests: skip markers naming why a machine cannot run the lab (not
root, no iproute2, no nftables), and checks that a lab left nothing behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from edgespec.sim.netns import Lab, SimUnavailable, check_prerequisites, leftovers, namespaces


def _lab_unavailable() -> str | None:
    """Why this machine cannot run the lab, or None: root, iproute2, and a scratch namespace that
    can be created, entered and removed (a container without CAP_SYS_ADMIN fails here)."""
    try:
        check_prerequisites()
    except SimUnavailable as exc:
        return str(exc)
    scratch = f"esim-check-{os.getpid()}"
    try:
        for argv in (["ip", "netns", "add", scratch], ["ip", "netns", "exec", scratch, "true"]):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            if done.returncode != 0:
                return f"`{' '.join(argv)}` fails: {done.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", scratch], capture_output=True, timeout=30, check=False)
    return None


REASON = _lab_unavailable()
needs_lab = pytest.mark.skipif(REASON is not None, reason=f"namespace lab unavailable: {REASON}")
needs_nft = pytest.mark.skipif(shutil.which("nft") is None,
                               reason="nftables not installed (apt-get install nftables); loss needs it")


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def assert_nothing_left(lab: Lab, pids: list[int] = (), within_s: float = 10.0) -> None:
    """No namespace, veth, nft table of `lab` and none of `pids` remain (after `within_s`)."""
    deadline = time.monotonic() + within_s
    while True:
        left, alive = leftovers(lab), [p for p in pids if pid_alive(p)]
        if not left and not alive:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"left behind: {left}, live pids {alive}")
        time.sleep(0.2)


def my_namespaces() -> list[str]:
    """Namespaces of labs this test process created (their suffix starts with our pid)."""
    return [ns for ns in namespaces() if ns.startswith("esim-") and ns.rsplit("-", 1)[1][:-2] == str(os.getpid())]
