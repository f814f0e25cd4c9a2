"""Measure a lab's link before the workload: round-trip time (TCP echo), rate (TCP bulk both ways)
and loss (UDP echo). `serve` runs in the edge namespace; `measure` runs in the device namespace
and, when the delay is user-space, sends TCP through a DelayProxy with the draft's LinkSpec (the
same code the draft runs), so the numbers are those of the path the draft uses. UDP bypasses the
proxy: it sees the kernel's shaping only (loss, rate, netem delay). Not a benchmark of edgespec.

    python -m edgespec.sim.probe serve --listen 10.231.0.2:7000 --ready-file F
    python -m edgespec.sim.probe measure --server 10.231.0.2:7000 --rtt 50 --jitter 5 --rate-hint 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import pathlib
import signal
import socket
import statistics
import struct
import sys
import time

from edgespec.net.link import LinkSpec
from edgespec.net.proxy import DelayProxy, format_address, parse_address

HEADER = struct.Struct("!cQ")          # mode (E echo, U upload, D download), byte count
ECHO_BYTES, UDP_BYTES, CHUNK = 32, 64, 64 << 10


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, echo: bool) -> None:
        self.echo, self.transport, self.arrivals = echo, None, {}

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if self.echo:
            self.transport.sendto(data, addr)
        else:
            self.arrivals.setdefault(struct.unpack_from("!I", data)[0], time.perf_counter())


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        mode, count = HEADER.unpack(await reader.readexactly(HEADER.size))
        if mode == b"E":
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
        elif mode == b"U":
            while count > 0 and (data := await reader.read(min(CHUNK, count))):
                count -= len(data)
            writer.write(b"K")
        elif mode == b"D":
            for start in range(0, count, CHUNK):
                writer.write(bytes(min(CHUNK, count - start)))
                await writer.drain()
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(listen: str, ready_file: str | None) -> None:
    """TCP (echo / sink / source) and UDP echo on the same HOST:PORT until SIGTERM/SIGINT."""
    host, port = parse_address(listen, "listen")
    server = await asyncio.start_server(_handle, host, port)
    bound = server.sockets[0].getsockname()[:2]
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(echo=True), local_addr=bound)
    if ready_file:
        pathlib.Path(ready_file).write_text(format_address(bound))
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    udp.close()
    server.close()


async def _connect(address: tuple[str, int], mode: bytes, count: int = 0):
    reader, writer = await asyncio.open_connection(*address)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    writer.write(HEADER.pack(mode, count))
    return reader, writer


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


async def tcp_rtt_ms(address: tuple[str, int], samples: int) -> list[float]:
    """Round trips of a small message over one TCP connection (the first, cold one is dropped)."""
    reader, writer = await _connect(address, b"E")
    times = []
    for _ in range(samples + 1):
        start = time.perf_counter()
        writer.write(bytes(ECHO_BYTES))
        await reader.readexactly(ECHO_BYTES)
        times.append((time.perf_counter() - start) * 1000)
    await _close(writer)
    return times[1:]


async def tcp_rate_mbit(address: tuple[str, int], nbytes: int, up: bool, rtt_ms: float) -> float:
    """Goodput of one bulk transfer, Mbit/s; one RTT (request + acknowledgement) is taken off."""
    start = time.perf_counter()
    reader, writer = await _connect(address, b"U" if up else b"D", nbytes)
    if up:
        for offset in range(0, nbytes, CHUNK):
            writer.write(bytes(min(CHUNK, nbytes - offset)))
            await writer.drain()
        await reader.readexactly(1)
    else:
        await reader.readexactly(nbytes)
    seconds = time.perf_counter() - start - rtt_ms / 1000
    await _close(writer)
    return nbytes * 8 / max(seconds, 1e-6) / 1e6


async def udp_loss(address: tuple[str, int], count: int, interval_s: float, wait_s: float) -> dict:
    """Send `count` numbered datagrams, count the echoes: round-trip loss and UDP RTT."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(lambda: _Udp(echo=False), remote_addr=address)
    sent = {}
    for seq in range(count):
        sent[seq] = time.perf_counter()
        transport.sendto(struct.pack("!I", seq) + bytes(UDP_BYTES - 4))
        await asyncio.sleep(interval_s)
    await asyncio.sleep(wait_s)
    transport.close()
    rtts = [(proto.arrivals[s] - sent[s]) * 1000 for s in proto.arrivals if s in sent]
    round_trip = 1 - len(rtts) / count
    return {"udp_sent": count, "udp_echoed": len(rtts), "loss_round_trip_pct": 100 * round_trip,
            "loss_per_direction_pct": 100 * (1 - math.sqrt(1 - round_trip)),
            "udp_rtt_ms_p50": statistics.median(rtts) if rtts else None}


def _bulk_bytes(rate_hint_mbit: float, quick: bool) -> int:
    seconds = 0.4 if quick else 1.0
    return 8 << 20 if not rate_hint_mbit else max(128 << 10, min(16 << 20, int(rate_hint_mbit * 1e6 / 8 * seconds)))


async def measure(server: str, link: LinkSpec, rate_hint_mbit: float, quick: bool) -> dict:
    """RTT, rate both ways and loss of the path to `server` (through a DelayProxy if `link`)."""
    address = parse_address(server, "server")
    tcp_to, proxy = address, None
    if not link.is_null:
        proxy = DelayProxy(upstream=address, link=link)
        tcp_to = await proxy.start()
    try:
        rtts = await tcp_rtt_ms(tcp_to, 5 if quick else 15)
        p50 = statistics.median(rtts)
        nbytes = _bulk_bytes(rate_hint_mbit, quick)
        up = await tcp_rate_mbit(tcp_to, nbytes, True, p50)
        down = await tcp_rate_mbit(tcp_to, nbytes, False, p50)
        await asyncio.sleep(link.rtt_ms / 1000 + link.jitter_ms / 500 + 0.05)  # let the proxy's legs end
    finally:
        if proxy is not None:
            await proxy.stop()
    loss = await udp_loss(address, 200 if quick else 1000, 0.001, max(0.3, 3 * p50 / 1000))
    return {"tcp_rtt_ms": {"p50": p50, "min": min(rtts), "max": max(rtts), "samples": len(rtts)},
            "rate_up_mbit": up, "rate_down_mbit": down, "bulk_bytes": nbytes,
            "tcp_path": "device delay proxy -> veth" if proxy else "veth", **loss}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgespec.sim.probe", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--listen", required=True)
    s.add_argument("--ready-file")
    m = sub.add_parser("measure")
    m.add_argument("--server", required=True)
    m.add_argument("--rtt", type=float, default=0.0)
    m.add_argument("--jitter", type=float, default=0.0)
    m.add_argument("--rate-hint", type=float, default=0.0, help="expected Mbit/s (sizes the bulk transfer)")
    m.add_argument("--quick", action="store_true")
    a = parser.parse_args(argv)
    if a.mode == "serve":
        asyncio.run(serve(a.listen, a.ready_file))
        return 0
    result = asyncio.run(measure(a.server, LinkSpec(rtt_ms=a.rtt, jitter_ms=a.jitter), a.rate_hint, a.quick))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
