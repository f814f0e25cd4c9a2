"""`python -m edgespec.sim.edge_link`: the `edge-link` sidecar of docker-compose.yml. It owns the
device's network namespace (the draft joins it) and shapes its egress (`EDGE_IFACE`, eth0) from the
EDGE_* variables with the mechanisms of `edgespec sim` (`edgespec.sim.shaping`):

- `netem` where the kernel has it: `netem delay EDGE_DELAY EDGE_JITTER loss EDGE_LOSS rate EDGE_RATE`
  on eth0 (device -> edge only: EDGE_DELAY is the extra round-trip time, +- EDGE_JITTER uniform).
- `userspace` otherwise: `tbf` (rate) on eth0, an nftables drop rule (loss) on eth0's egress, and
  the DelayProxy of `edgespec netproxy` (delay, jitter) on the draft -> target path: an nftables
  `redirect` sends non-root TCP to the target (the draft runs as uid 10001) to the proxy on
  127.0.0.1, which adds (EDGE_DELAY - EDGE_JITTER) plus U(0, EDGE_JITTER) per direction: the same
  mean and range of extra RTT. Only that path is delayed (not the SDK port nor scrapes).

Then it measures what the draft will see (RTT: gRPC health round trips on the draft's path; rate:
one large health request; loss: ICMP echo to the target through eth0), prints one line and the JSON,
writes `EDGE_READY_FILE` (the compose healthcheck) and waits for SIGTERM. It does NOT start or
configure the draft or the target, and removes nothing on exit (the namespace dies with it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import statistics
import sys
import time
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgespec.net.link import LinkSpec
from edgespec.net.proxy import DelayProxy, parse_address
from edgespec.sim.netns import LabError, sh
from edgespec.sim import shaping
from edgespec.sim.shaping import netem_qdisc, nft_loss_rules, tbf_qdisc

log = logging.getLogger("edgespec.edge_link")
NFT_TABLE, NAT_TABLE = "edge_link", "edge_link_nat"
UNITS = {"ms": {"": 1.0, "ms": 1.0, "s": 1000.0, "us": 0.001},
         "mbit": {"": 1.0, "mbit": 1.0, "kbit": 1e-3, "gbit": 1e3, "bit": 1e-6}}


def _quantity(name: str, text: str, unit: str) -> float:
    """'40ms' / '0.04s' -> 40.0 (unit ms); '500kbit' -> 0.5 (unit mbit); '1%' -> 1.0 (unit %)."""
    scales = UNITS.get(unit, {"": 1.0, "%": 1.0})
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z%]*)\s*", text.lower())
    if not match or match.group(2) not in scales:
        raise ValueError(f"{name}={text!r}: expected a number with one of the units {sorted(u for u in scales if u)}")
    return float(match.group(1)) * scales[match.group(2)]


@dataclass(frozen=True)
class EdgeLinkConfig:
    """The link asked for by the EDGE_* variables (one source of the compose defaults: the file)."""

    delay_ms: float
    jitter_ms: float
    loss_pct: float
    rate_mbit: float
    target: str = "target:50051"
    iface: str = "eth0"
    mechanism: str = "auto"
    proxy_port: int = 15051
    ready_file: str = "/tmp/edge-link.ready"
    measure_timeout_s: float = 300.0

    @classmethod
    def from_env(cls, env: dict[str, str]) -> EdgeLinkConfig:
        config = cls(delay_ms=_quantity("EDGE_DELAY", env.get("EDGE_DELAY", "0ms"), "ms"),
                     jitter_ms=_quantity("EDGE_JITTER", env.get("EDGE_JITTER", "0ms"), "ms"),
                     loss_pct=_quantity("EDGE_LOSS", env.get("EDGE_LOSS", "0%"), "%"),
                     rate_mbit=_quantity("EDGE_RATE", env.get("EDGE_RATE", "0mbit"), "mbit"),
                     target=env.get("EDGE_TARGET", cls.target), iface=env.get("EDGE_IFACE", cls.iface),
                     mechanism=env.get("EDGE_MECHANISM", cls.mechanism),
                     ready_file=env.get("EDGE_READY_FILE", cls.ready_file))
        if config.mechanism not in ("auto", *MECHANISMS):
            raise ValueError(f"EDGE_MECHANISM must be auto, netem or userspace; got {config.mechanism!r}")
        if config.loss_pct >= 100:
            raise ValueError(f"EDGE_LOSS must be below 100%, got {config.loss_pct:g}%")
        parse_address(config.target, "EDGE_TARGET")
        return config

    def proxy_link(self) -> LinkSpec:
        """The DelayProxy's link: extra RTT in [delay - jitter, delay + jitter], mean delay."""
        return LinkSpec(rtt_ms=max(self.delay_ms - self.jitter_ms, 0.0), jitter_ms=self.jitter_ms)


def netem_available() -> bool:
    """Whether this kernel has netem: try it on this namespace's loopback for a moment."""
    if sh("tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", check=False).returncode != 0:
        return False
    sh("tc", "qdisc", "del", "dev", "lo", "root", check=False)
    return True


def _apply_netem(cfg: EdgeLinkConfig, target_ip: str) -> list[str]:
    argv = ["tc", "qdisc", "replace", "dev", cfg.iface, "root",
            *netem_qdisc(cfg.delay_ms, cfg.jitter_ms, cfg.loss_pct, cfg.rate_mbit)]
    sh(*argv)
    return [" ".join(argv)]


def _apply_userspace(cfg: EdgeLinkConfig, target_ip: str) -> list[str]:
    if cfg.rate_mbit:
        commands = [["tc", "qdisc", "replace", "dev", cfg.iface, "root", *tbf_qdisc(cfg.rate_mbit)]]
    else:
        commands = [["tc", "qdisc", "del", "dev", cfg.iface, "root"]]
        sh(*commands[0], check=False)  # absent is fine
        commands = []
    if cfg.loss_pct:
        commands += [["nft", *rule] for rule in nft_loss_rules(NFT_TABLE, cfg.iface, cfg.loss_pct)]
    port = parse_address(cfg.target, "EDGE_TARGET")[1]
    commands += [["nft", "add", "table", "ip", NAT_TABLE],
                 ["nft", "add", "chain", "ip", NAT_TABLE, "out", "{ type nat hook output priority -100 ; }"],
                 ["nft", "add", "rule", "ip", NAT_TABLE, "out", "ip", "daddr", target_ip, "tcp", "dport", str(port),
                  "meta", "skuid", "!=", "0", "redirect", "to", f":{cfg.proxy_port}"]]
    for table in (("inet", NFT_TABLE), ("ip", NAT_TABLE)):
        sh("nft", "delete", "table", *table, check=False)  # idempotent on a restart
    for argv in commands:
        sh(*argv)
    return [" ".join(argv) for argv in commands]


MECHANISMS = {
    "netem": (_apply_netem, "tc netem on {iface} (delay, jitter, loss, rate)"),
    "userspace": (_apply_userspace, "tbf on {iface} (rate), nftables drop rule (loss), DelayProxy on "
                  "127.0.0.1:{proxy_port} for the draft's TCP to {target} (delay, jitter)"),
}


def choose_mechanism(requested: str) -> str:
    """The sim's choice (`shaping.choose_mechanism`), probing netem in this namespace."""
    return shaping.choose_mechanism(requested, netem_available, "EDGE_MECHANISM=userspace")


async def _resolve(host: str, deadline: float) -> str:
    """The target's IPv4 address (it may not be up yet: compose starts both at once)."""
    while True:
        try:
            return (await asyncio.get_running_loop().getaddrinfo(host, None, family=socket.AF_INET))[0][4][0]
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


async def _health_rtts(address: str, deadline: float, samples: int = 15) -> tuple[list[float], float]:
    """Health round trips (ms) on one channel once the target is SERVING, and the upload rate
    (Mbit/s) of one ~256 KiB health request on the same channel."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                if (await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)).status == 1:
                    break
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the target at {address} did not become SERVING")
            await asyncio.sleep(1.0)
        rtts = []
        for _ in range(samples):
            start = time.perf_counter()
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            rtts.append((time.perf_counter() - start) * 1000)
        payload = "r" * (256 << 10)
        start = time.perf_counter()
        try:
            await stub.Check(health_pb2.HealthCheckRequest(service=payload), timeout=30)
        except grpc.aio.AioRpcError:
            pass  # NOT_FOUND: the request crossed the link, which is all that is timed
        seconds = time.perf_counter() - start - statistics.median(rtts) / 1000
        return rtts, len(payload) * 8 / max(seconds, 1e-6) / 1e6


def _ping_loss(target_ip: str, count: int = 200) -> dict:
    """ICMP echo through eth0 (the kernel path, without the proxy): loss on the way out and RTT."""
    done = sh("ping", "-q", "-n", "-c", str(count), "-i", "0.01", "-W", "2", target_ip, check=False, timeout=60)
    loss = re.search(r"([\d.]+)% packet loss", done.stdout)
    rtt = re.search(r"= [\d.]+/([\d.]+)/", done.stdout)
    return {"icmp_sent": count, "loss_pct": float(loss.group(1)) if loss else None,
            "icmp_rtt_ms_avg": float(rtt.group(1)) if rtt else None}


async def measure(cfg: EdgeLinkConfig, mechanism: str, target_ip: str) -> dict:
    """What the draft's path achieves: RTT and upload rate over gRPC, loss over ICMP."""
    path = f"127.0.0.1:{cfg.proxy_port}" if mechanism == "userspace" else cfg.target
    rtts, rate = await _health_rtts(path, time.monotonic() + cfg.measure_timeout_s)
    loss = await asyncio.to_thread(_ping_loss, target_ip)
    return {"rtt_ms": {"p50": round(statistics.median(rtts), 2), "min": round(min(rtts), 2),
                       "max": round(max(rtts), 2), "samples": len(rtts)},
            "rate_up_mbit": round(rate, 2), **loss, "path": path}


async def run(cfg: EdgeLinkConfig) -> None:
    if os.path.exists(cfg.ready_file):  # a restarted container is not ready until shaped again
        os.unlink(cfg.ready_file)
    mechanism = choose_mechanism(cfg.mechanism)
    apply, description = MECHANISMS[mechanism]
    host = cfg.target.rsplit(":", 1)[0]
    target_ip = await _resolve(host, time.monotonic() + cfg.measure_timeout_s)
    commands = apply(cfg, target_ip)
    log.warning("edge-link: mechanism %s: %s", mechanism, description.format(**vars(cfg)))
    for command in commands:
        log.warning("edge-link: %s", command)
    proxy = None
    if mechanism == "userspace":
        proxy = DelayProxy(upstream=parse_address(cfg.target, "EDGE_TARGET"), link=cfg.proxy_link(),
                           listen=("127.0.0.1", cfg.proxy_port))
        await proxy.start()
    asked = {"delay_ms": cfg.delay_ms, "jitter_ms": cfg.jitter_ms, "loss_pct": cfg.loss_pct, "rate_mbit": cfg.rate_mbit}
    try:
        achieved = await measure(cfg, mechanism, target_ip)
        log.warning("edge-link: measured rtt p50 %.1f ms (min %.1f, max %.1f), rate up %.1f Mbit/s, loss %s%% "
                    "(asked: %s)", achieved["rtt_ms"]["p50"], achieved["rtt_ms"]["min"], achieved["rtt_ms"]["max"],
                    achieved["rate_up_mbit"], achieved["loss_pct"], asked)
    except (TimeoutError, grpc.aio.AioRpcError) as exc:
        achieved = {"error": str(exc).splitlines()[0]}
        log.warning("edge-link: not measured: %s", achieved["error"])
    report = {"mechanism": mechanism, "asked": asked, "achieved": achieved, "commands": commands}
    print(json.dumps(report), flush=True)
    with open(cfg.ready_file, "w") as ready:
        json.dump(report, ready)
    await _until_signalled()
    if proxy is not None:
        await proxy.stop()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
    try:
        cfg = EdgeLinkConfig.from_env(dict(os.environ))
        asyncio.run(run(cfg))
    except (ValueError, LabError, OSError) as exc:
        print(f"edge-link: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
