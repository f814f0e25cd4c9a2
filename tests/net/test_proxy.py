"""DelayProxy and link emulation: round trips gain the RTT, jitter never reorders, the rate limit
holds, blackhole stalls and heals, half-close and stop() are clean; gRPC through the proxy; the
`netproxy` subcommand and the draft's `--emulate-*` flags; LinkSpec validation names the field."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgespec.cli import build_parser
from edgespec.service_cli import draft_config
from edgespec.net.cli import link_spec_from_args
from edgespec.draft.config import DraftConfig
from edgespec.draft.serve import emulated_link, start_draft
from edgespec.models.draft_runtime import torch_draft
from edgespec.models.presets import load_model
from edgespec.net.link import LinkSpec
from edgespec.net.proxy import DelayProxy, parse_address
from edgespec.orchestrator.config import OrchestratorConfig
from edgespec.rpc.server import ServerOptions, start_server
from edgespec.target.config import TargetConfig
from edgespec.target.serve import start_target, stop_target
from edgespec_client import AsyncClient

FAST = ServerOptions(listen="127.0.0.1:0", grace_s=0.5, keepalive_time_s=1.0, keepalive_timeout_s=1.0)
T = 3.0  # bound on any single wait, seconds


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1 << 16):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def echo():
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[:2]
    server.close()
    await server.wait_closed()


async def _round_trip(reader, writer, payload: bytes) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    writer.write(payload)
    assert await asyncio.wait_for(reader.readexactly(len(payload)), T) == payload
    return loop.time() - start


async def test_round_trip_gains_the_rtt(echo):
    async with DelayProxy(upstream=echo, link=LinkSpec(rtt_ms=60)) as proxy:
        reader, writer = await asyncio.open_connection(*proxy.bound)
        times = [await _round_trip(reader, writer, b"ping %d" % i) for i in range(5)]
        writer.close()
    assert all(0.0595 <= t < 0.120 for t in times), times
    assert proxy.bytes_up == proxy.bytes_down == sum(len(b"ping %d" % i) for i in range(5))


async def test_jitter_never_reorders_bytes(echo):
    records = [i.to_bytes(4, "big") * 2 for i in range(3000)]
    async with DelayProxy(upstream=echo, link=LinkSpec(rtt_ms=10, jitter_ms=30), seed=7) as proxy:
        reader, writer = await asyncio.open_connection(*proxy.bound)
        for start in range(0, len(records), 30):  # 100 separate chunks, each with its own jitter
            writer.write(b"".join(records[start:start + 30]))
            await writer.drain()
            await asyncio.sleep(0.001)
        echoed = await asyncio.wait_for(reader.readexactly(8 * len(records)), T)
        writer.close()
    assert echoed == b"".join(records)


async def test_rate_limit_holds():
    loop = asyncio.get_running_loop()
    received, done = bytearray(), asyncio.Event()
    size = 200_000

    async def sink(reader, writer):
        while data := await reader.read(1 << 16):
            received.extend(data)
            if len(received) >= size:
                done.set()
        writer.close()
    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    async with DelayProxy(upstream=server.sockets[0].getsockname()[:2], link=LinkSpec(rate_mbit=8)) as proxy:
        _, writer = await asyncio.open_connection(*proxy.bound)
        start = loop.time()
        writer.write(bytes(size))
        await asyncio.wait_for(done.wait(), T)
        elapsed = loop.time() - start
        writer.close()
    server.close()
    ideal = size * 8 / 8e6  # 0.2 s
    assert 0.9 * ideal <= elapsed < 1.5 * ideal + 0.1, elapsed
    assert proxy.bytes_up == size


async def test_blackhole_stalls_both_ways_and_heals(echo):
    async with DelayProxy(upstream=echo, link=LinkSpec(rtt_ms=10)) as proxy:
        reader, writer = await asyncio.open_connection(*proxy.bound)
        await _round_trip(reader, writer, b"before")
        proxy.blackhole(True)
        writer.write(b"during")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(100), 0.3)
        assert proxy.bytes_up == len(b"before")  # nothing reached the upstream
        proxy.blackhole(False)
        assert await asyncio.wait_for(reader.readexactly(6), T) == b"during"
        await _round_trip(reader, writer, b"after")
        writer.close()


async def test_half_close_delivers_everything_before_eof(echo):
    payload = bytes(range(256)) * 400
    async with DelayProxy(upstream=echo, link=LinkSpec(rtt_ms=20, jitter_ms=5)) as proxy:
        reader, writer = await asyncio.open_connection(*proxy.bound)
        writer.write(payload)
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), T) == payload  # read() runs to EOF
        writer.close()


async def test_stop_closes_connections_and_leaves_no_tasks(echo):
    proxy = DelayProxy(upstream=echo, link=LinkSpec(rtt_ms=200))
    await proxy.start()
    reader, writer = await asyncio.open_connection(*proxy.bound)
    writer.write(b"in flight")
    await asyncio.sleep(0.05)
    await asyncio.wait_for(proxy.stop(), T)
    assert await asyncio.wait_for(reader.read(), T) == b""  # closed, the delayed bytes dropped
    writer.close()
    leftovers = [t for t in asyncio.all_tasks() if "DelayProxy" in t.get_coro().__qualname__]
    assert leftovers == []
    with pytest.raises(OSError):
        await asyncio.open_connection(*proxy.bound)


async def test_unreachable_upstream_closes_the_client():
    async with DelayProxy(upstream=("127.0.0.1", 9)) as proxy:
        reader, writer = await asyncio.open_connection(*proxy.bound)
        assert await asyncio.wait_for(reader.read(), T) == b""
        writer.close()


async def test_grpc_health_check_through_the_proxy_gains_the_rtt():
    running = await start_server(FAST, lambda server: [])
    proxy = DelayProxy(upstream=parse_address(running.address), link=LinkSpec(rtt_ms=40))
    await proxy.start()
    loop = asyncio.get_running_loop()
    try:
        async with grpc.aio.insecure_channel(proxy.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=T)  # connect + warm up
            times = []
            for _ in range(3):
                start = loop.time()
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=T)
                times.append(loop.time() - start)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await proxy.stop()
        await running.stop()
    assert all(0.0395 <= t < 0.140 for t in times), times


async def test_draft_dials_the_target_through_the_emulated_link():
    target_running, target_servicer = await start_target(TargetConfig(model="tiny", server=FAST),
                                                         load_model("tiny", "target"))
    orchestrator = OrchestratorConfig(target=target_running.address, tokenizer="tiny", server=FAST)
    config = DraftConfig(model="tiny", orchestrator=orchestrator, server=FAST)
    try:
        async with emulated_link(config, LinkSpec(rtt_ms=30)) as (config, proxy):
            draft = await start_draft(config, torch_draft(load_model("tiny", "draft")))
            try:
                async with AsyncClient(draft.running.address, timeout=10 * T) as client:
                    result = await client.generate("hello there", max_new_tokens=8, k=3)
            finally:
                await draft.running.stop()
                await draft.shutdown()
    finally:
        await stop_target(target_running, target_servicer)
    assert proxy.bytes_up > 0 and proxy.bytes_down > 0
    assert config.orchestrator.target == proxy.address != orchestrator.target
    assert result.stats.round_trip_ms.p50 >= 30, result.stats.round_trip_ms


def test_draft_emulate_flags_make_a_link_spec():
    a = build_parser().parse_args(["draft", "--model", "tiny", "--emulate-rtt", "40", "--emulate-jitter", "5",
                                   "--emulate-rate", "20"])
    assert link_spec_from_args(a) == LinkSpec(rtt_ms=40, jitter_ms=5, rate_mbit=20)
    assert link_spec_from_args(build_parser().parse_args(["draft", "--model", "tiny"])) is None


async def test_link_emulation_needs_the_embedded_orchestrator():
    alone = build_parser().parse_args(["draft", "--no-orchestrator", "--emulate-rtt", "5"])
    with pytest.raises(ValueError, match="link"):
        async with emulated_link(draft_config(alone), link_spec_from_args(alone)):
            pass


@pytest.mark.parametrize("field", ["rtt_ms", "jitter_ms", "rate_mbit"])
@pytest.mark.parametrize("value", [-1, math.nan, math.inf, "3"])
def test_link_spec_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        LinkSpec(**{field: value})


def test_link_spec_values():
    link = LinkSpec(rtt_ms=40, rate_mbit=8)
    assert link.one_way_ms == 20 and link.rate_bytes_per_s == 1e6 and not link.is_null
    assert LinkSpec().is_null
    assert parse_address("[::1]:80") == ("::1", 80) and parse_address("host:5") == ("host", 5)
    with pytest.raises(ValueError, match="upstream"):
        parse_address("nope", "upstream")


@pytest.mark.parametrize("flags,field", [(["--rtt", "-1"], "rtt"), (["--listen", "nowhere"], "listen")])
def test_netproxy_bad_input_is_one_line(flags, field):
    out = subprocess.run([sys.executable, "-m", "edgespec", "netproxy", "--upstream", "127.0.0.1:1", *flags],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.startswith("edgespec netproxy: error:") and field in out.stderr


async def test_netproxy_command_serves_until_sigterm(echo):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgespec", "netproxy", "--upstream", "%s:%d" % echo, "--rtt", "30",
        stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("netproxy listening on 127.0.0.1:"), line
        reader, writer = await asyncio.open_connection(*parse_address(line.split()[3]))
        assert await _round_trip(reader, writer, b"hello") >= 0.0295
        writer.close()
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), T) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
