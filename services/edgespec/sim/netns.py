"""The two hosts of `edgespec sim`: network namespaces `device` and `edge` joined by a veth pair
with private addresses (10.231.0.1 <-> 10.231.0.2/30, which exist only inside the namespaces, so
parallel labs never collide: only the names carry a per-run suffix). Creation, teardown and the
leftover check; it does NOT shape the link (`shaping`) or start processes (`procs`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

PREFIX = "esim"
DEVICE_IP, EDGE_IP, PREFIX_LEN = "10.231.0.1", "10.231.0.2", 30


class SimUnavailable(RuntimeError):
    """This machine cannot run the namespace lab (not root, no iproute2, ...)."""


class LabError(RuntimeError):
    """A command building or shaping the lab failed."""


def sh(*argv: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Run one command; on failure raise LabError with its first stderr line."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          check=False)
    if check and done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}").splitlines()[0]
        raise LabError(f"`{' '.join(argv)}` failed: {detail}")
    return done


def check_prerequisites() -> None:
    """Raise SimUnavailable (one line) unless root with a working `ip netns`."""
    if os.geteuid() != 0:
        raise SimUnavailable("needs root (it creates network namespaces and shapes links); run it as root")
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            raise SimUnavailable(f"needs iproute2 (`{tool}` not found): apt-get install iproute2")
    if sh("ip", "netns", "list", check=False).returncode != 0:
        raise SimUnavailable("`ip netns list` fails on this machine: network namespaces are unavailable")


@dataclass(frozen=True)
class Lab:
    """Names of one lab's namespaces, veth ends and nftables table (all carry `suffix`)."""

    suffix: str

    @classmethod
    def new(cls) -> Lab:
        """A fresh suffix: this process's pid (so `cleanup` can tell dead owners) + 2 random hex."""
        return cls(f"{os.getpid()}{secrets.token_hex(1)}")

    @property
    def device(self) -> str:
        return f"{PREFIX}-dev-{self.suffix}"

    @property
    def edge(self) -> str:
        return f"{PREFIX}-edge-{self.suffix}"

    @property
    def device_if(self) -> str:
        return f"esd{self.suffix}"

    @property
    def edge_if(self) -> str:
        return f"ese{self.suffix}"

    @property
    def nft_table(self) -> str:
        return f"{PREFIX}_{self.suffix}"

    def interfaces(self) -> dict[str, str]:
        """Namespace -> its end of the veth pair."""
        return {self.device: self.device_if, self.edge: self.edge_if}


def namespaces() -> list[str]:
    """Names of the network namespaces `ip netns` knows ("NAME (id: N)" lines)."""
    return [line.split()[0] for line in sh("ip", "netns", "list", check=False).stdout.splitlines() if line.strip()]


def exec_argv(namespace: str, argv: list[str]) -> list[str]:
    """`argv` run inside `namespace` (ip netns exec execs it: the pid stays the program's)."""
    return ["ip", "netns", "exec", namespace, *argv]


def create(lab: Lab) -> None:
    """Both namespaces with lo up, the veth pair between them, addressed and up."""
    sh("ip", "netns", "add", lab.device)
    sh("ip", "netns", "add", lab.edge)
    sh("ip", "link", "add", lab.device_if, "type", "veth", "peer", "name", lab.edge_if)
    for ns, ifname, ip in ((lab.device, lab.device_if, DEVICE_IP), (lab.edge, lab.edge_if, EDGE_IP)):
        sh("ip", "link", "set", ifname, "netns", ns)
        sh("ip", "-n", ns, "addr", "add", f"{ip}/{PREFIX_LEN}", "dev", ifname)
        sh("ip", "-n", ns, "link", "set", ifname, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")  # the draft's delay proxy listens on loopback


def destroy(lab: Lab) -> list[str]:
    """Remove everything `create` and `shaping` made; returns what could not be removed."""
    names = set(namespaces())
    for ns in (lab.device, lab.edge):
        if ns in names:
            if shutil.which("nft"):
                sh("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", lab.nft_table, check=False)
            sh("ip", "netns", "del", ns, check=False)
    for ifname in (lab.device_if, lab.edge_if):  # still in the root namespace if create() stopped early
        if sh("ip", "link", "show", ifname, check=False).returncode == 0:
            sh("ip", "link", "del", ifname, check=False)
    return leftovers(lab)


def leftovers(lab: Lab) -> list[str]:
    """Names of this lab still present: namespaces, root-namespace links, nftables tables."""
    found = [ns for ns in namespaces() if ns.endswith(f"-{lab.suffix}")]
    links = sh("ip", "-o", "link", "show", check=False).stdout
    found += [ifname for ifname in (lab.device_if, lab.edge_if) if f" {ifname}@" in links or f" {ifname}:" in links]
    if shutil.which("nft"):
        found += [t for t in sh("nft", "list", "tables", check=False).stdout.split() if t == lab.nft_table]
    return found


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP during the block (a teardown must not be cut short); they are
    delivered, and raise, when it ends."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def lab_up() -> Iterator[Lab]:
    """A new lab for the duration of the block, torn down on any exit."""
    lab = Lab.new()
    try:
        with deferred_signals():
            create(lab)
        yield lab
    finally:
        with deferred_signals():
            remaining = destroy(lab)
        if remaining:
            raise LabError(f"teardown left {remaining} behind")


def stale_labs() -> list[Lab]:
    """Labs whose owning process is gone (killed with SIGKILL, say): `edgespec sim cleanup`."""
    labs = []
    for ns in namespaces():
        if ns.startswith((f"{PREFIX}-dev-", f"{PREFIX}-edge-")):
            suffix = ns.rsplit("-", 1)[1]
            if not os.path.exists(f"/proc/{suffix[:-2]}") and Lab(suffix) not in labs:
                labs.append(Lab(suffix))
    return labs
