"""Shape the device <-> edge veth link of a lab to a `LinkShape`, with one of two mechanisms:

- `netem`: `tc qdisc replace ... netem delay (rtt+jitter)/2 jitter/2 loss L rate R` on both veth
  ends (each end shapes its egress, so each direction gets half the RTT). Used where the kernel
  has netem.
- `userspace` (kernels without netem, like CI's): rate with `tbf` on both veth ends, loss with an
  nftables `numgen random` drop rule on each namespace's egress, and delay + jitter with the
  `edgespec.net.proxy.DelayProxy` that the draft (and the link probe) run inside the device
  namespace on its loopback. tbf's burst stays far above the veth MTU (1500): a packet larger
  than the burst is dropped silently (the lo/64 KiB-MTU pitfall), so lo is never shaped.
Applying is idempotent (a sweep re-applies per cell). It does NOT create namespaces or measure.
The qdisc and nftables building blocks (`netem_qdisc`, `tbf_qdisc`, `nft_loss_rules`) are shared
with the compose sidecar (`edgespec.sim.edge_link`), so both shape a link the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgespec.net.link import LinkSpec
from edgespec.sim.config import LinkShape
from edgespec.sim.netns import Lab, LabError, sh

TBF_MIN_BURST_BYTES = 16 << 10     # >> MTU, so no packet is ever larger than the bucket
TBF_BURST_S = 0.005                # or 5 ms worth of bytes at the rate, if that is more
TBF_LATENCY_MS = 100               # queue limit of tbf, as time at the rate
LOSS_SCALE = 10_000                # loss resolution: 0.01 %


@dataclass(frozen=True)
class Shaping:
    """What shapes the link now: the mechanism, the delay the device-side proxy must add (None
    when the kernel adds it), and the commands that ran (for the report)."""

    mechanism: str
    description: str
    proxy_link: LinkSpec | None
    commands: tuple[str, ...]


def netem_available() -> bool:
    """Whether this kernel has the netem qdisc: try it on lo in a scratch namespace."""
    scratch = f"{Lab.new().device}-netem"
    sh("ip", "netns", "add", scratch)
    try:
        probe = sh("tc", "-n", scratch, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", check=False)
        return probe.returncode == 0
    finally:
        sh("ip", "netns", "del", scratch, check=False)


def choose_mechanism(requested: str, probe: Callable[[], bool] | None = None,
                     instead: str = "--mechanism userspace") -> str:
    """`auto` picks netem when the kernel has it (`probe`, default `netem_available`), else
    `userspace`; `netem` insists on it (the error says to use `instead`)."""
    if requested not in ("auto", *MECHANISMS):
        raise ValueError(f"mechanism must be auto, {', '.join(MECHANISMS)}; got {requested!r}")
    if requested == "userspace":
        return requested
    has_netem = (probe or netem_available)()
    if requested == "netem" and not has_netem:
        raise LabError(f"this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM); use {instead}")
    return "netem" if has_netem else "userspace"


def apply(lab: Lab, shape: LinkShape, mechanism: str) -> Shaping:
    """Shape `lab`'s link to `shape` with `mechanism` (a key of MECHANISMS)."""
    return MECHANISMS[mechanism](lab, shape)


def _tc(ns: str, ifname: str, *qdisc: str) -> str:
    """Replace the root qdisc of `ifname` in `ns` (or remove it when `qdisc` is empty)."""
    if not qdisc:
        sh("tc", "-n", ns, "qdisc", "del", "dev", ifname, "root", check=False)  # absent is fine
        return ""
    argv = ("tc", "-n", ns, "qdisc", "replace", "dev", ifname, "root", *qdisc)
    sh(*argv)
    return " ".join(argv)


def netem_qdisc(delay_ms: float, jitter_ms: float, loss_pct: float, rate_mbit: float) -> list[str]:
    """`netem` arguments for one interface's egress: delay +- jitter (uniform), loss, rate."""
    qdisc = ["netem", "delay", f"{delay_ms:g}ms"]
    if jitter_ms:
        qdisc.append(f"{jitter_ms:g}ms")
    if loss_pct:
        qdisc += ["loss", f"{loss_pct:g}%"]
    if rate_mbit:
        qdisc += ["rate", f"{rate_mbit:g}mbit"]
    return qdisc


def _apply_netem(lab: Lab, shape: LinkShape) -> Shaping:
    # netem's jitter is uniform in +-J: centre it so each direction gets U(rtt/2, rtt/2 + jitter),
    # as the user-space proxy does (netem may reorder jittered packets; the proxy never does).
    qdisc = netem_qdisc((shape.rtt_ms + shape.jitter_ms) / 2, shape.jitter_ms / 2, shape.loss_pct, shape.rate_mbit)
    commands = tuple(_tc(ns, ifname, *qdisc) for ns, ifname in lab.interfaces().items())
    return Shaping("netem", "tc netem on both veth ends (delay, jitter, loss, rate)", None, commands)


def tbf_qdisc(rate_mbit: float) -> list[str]:
    """`tbf` arguments limiting an egress to `rate_mbit` (empty for 0: unlimited)."""
    if not rate_mbit:
        return []
    burst = max(TBF_MIN_BURST_BYTES, int(rate_mbit * 1e6 / 8 * TBF_BURST_S))
    return ["tbf", "rate", f"{rate_mbit:g}mbit", "burst", str(burst), "latency", f"{TBF_LATENCY_MS}ms"]


def nft_loss_rules(table: str, ifname: str, loss_pct: float) -> list[list[str]]:
    """`nft` argument lists: table `inet TABLE` dropping `loss_pct` % of the packets leaving `ifname`."""
    threshold = round(loss_pct / 100 * LOSS_SCALE)
    return [["add", "table", "inet", table],
            ["add", "chain", "inet", table, "egress", "{ type filter hook output priority 0 ; policy accept ; }"],
            ["add", "rule", "inet", table, "egress", "oifname", ifname,
             "numgen", "random", "mod", str(LOSS_SCALE), "<", str(threshold), "drop"]]


def _nft_loss(lab: Lab, ns: str, ifname: str, loss_pct: float) -> list[str]:
    """Drop `loss_pct` % of the packets leaving `ifname` (the namespace's egress to the peer)."""
    nft = ["ip", "netns", "exec", ns, "nft"]
    sh(*nft, "delete", "table", "inet", lab.nft_table, check=False)  # idempotent re-apply
    if not loss_pct:
        return []
    commands = [[*nft, *rule] for rule in nft_loss_rules(lab.nft_table, ifname, loss_pct)]
    for argv in commands:
        sh(*argv)
    return [" ".join(argv) for argv in commands]


def _apply_userspace(lab: Lab, shape: LinkShape) -> Shaping:
    if shape.loss_pct and sh("sh", "-c", "command -v nft", check=False).returncode != 0:
        raise LabError("--loss needs nftables without netem: apt-get install nftables")
    commands: list[str] = []
    for ns, ifname in lab.interfaces().items():
        commands.append(_tc(ns, ifname, *tbf_qdisc(shape.rate_mbit)))
        commands += _nft_loss(lab, ns, ifname, shape.loss_pct)
    proxy = LinkSpec(rtt_ms=shape.rtt_ms, jitter_ms=shape.jitter_ms)
    return Shaping("userspace", "tbf on the veth ends (rate), nftables drop rules (loss), user-space "
                   "delay proxy in the device namespace (delay, jitter)",
                   None if proxy.is_null else proxy, tuple(c for c in commands if c))


MECHANISMS: dict[str, Callable[[Lab, LinkShape], Shaping]] = {
    "netem": _apply_netem,
    "userspace": _apply_userspace,
}
