"""Command-line wiring for link emulation: the `edgespec netproxy` subcommand (a standalone
DelayProxy until SIGINT/SIGTERM) and the `--emulate-*` flags that put one in front of the draft's
target link. Parsing and process lifetime only; the proxy itself lives in `edgespec.net.proxy`."""

from __future__ import annotations

import argparse
import asyncio
import signal

from edgespec.net.link import LinkSpec
from edgespec.net.proxy import DelayProxy, format_address, parse_address


def add_netproxy_flags(p: argparse.ArgumentParser) -> None:
    """Flags of `edgespec netproxy` (added to the subparser `edgespec.cli` creates)."""
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to accept on (port 0: any)")
    p.add_argument("--upstream", required=True, help="HOST:PORT to forward to (e.g. the target)")
    p.add_argument("--rtt", type=float, default=0.0, help="round-trip time to add, ms (half each way)")
    p.add_argument("--jitter", type=float, default=0.0, help="extra U(0, MS) delay per direction, order kept")
    p.add_argument("--rate", type=float, default=0.0, help="rate limit per direction, Mbit/s (0: unlimited)")
    p.add_argument("--seed", type=int, default=None, help="seed for the jitter draws")


def add_emulation_flags(p: argparse.ArgumentParser) -> None:
    """`--emulate-*` flags: run a DelayProxy in-process on the link to the target."""
    p.add_argument("--emulate-rtt", type=float, default=0.0, metavar="MS",
                   help="emulate this round-trip time on the link to the target, ms")
    p.add_argument("--emulate-jitter", type=float, default=0.0, metavar="MS",
                   help="emulated jitter per direction, ms (order kept)")
    p.add_argument("--emulate-rate", type=float, default=0.0, metavar="MBIT",
                   help="emulated rate limit per direction, Mbit/s (0: unlimited)")


def link_spec_from_args(a: argparse.Namespace) -> LinkSpec | None:
    """The LinkSpec the `--emulate-*` flags ask for, or None when they are all zero."""
    link = LinkSpec(rtt_ms=a.emulate_rtt, jitter_ms=a.emulate_jitter, rate_mbit=a.emulate_rate)
    return None if link.is_null else link


def run_netproxy(a: argparse.Namespace) -> int:
    """`edgespec netproxy`: validate everything first (errors are one line), then serve."""
    link = LinkSpec(rtt_ms=a.rtt, jitter_ms=a.jitter, rate_mbit=a.rate)
    proxy = DelayProxy(upstream=parse_address(a.upstream, "upstream"), link=link,
                       listen=parse_address(a.listen, "listen"), seed=a.seed)
    asyncio.run(_serve(proxy))
    return 0


async def _serve(proxy: DelayProxy) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with proxy:
        print(f"netproxy listening on {proxy.address} -> {format_address(proxy.upstream)} "
              f"({proxy.link.describe()})", flush=True)
        await stop.wait()
