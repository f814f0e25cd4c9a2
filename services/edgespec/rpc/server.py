"""gRPC server and channel scaffolding shared by the three services: grpc.aio server with the
status interceptor (and the token interceptor when `auth_tokens` is set), TLS/mTLS, message-size
limits, keepalive policy, health service, reflection (loopback listeners only unless asked), a
ready file for supervisors, and graceful shutdown (NOT_SERVING -> drain -> stop(grace)).
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from edgespec.rpc.auth import AuthInterceptor, TokenTable
from edgespec.rpc.errors import ErrorHook, StatusInterceptor, ignore_errors
from edgespec.rpc.security import ServerTls, is_loopback

log = logging.getLogger(__name__)
# Largest message a server takes. Ours are far smaller (a 4,096-token prompt ~20 KB; a block with
# 32 hidden states of d = 4096 in fp16 256 KB; a dense residual over a 262k vocabulary 1 MB), and
# grpc.aio keeps native memory proportional to a refused oversized request (grpc/grpc#43360-like):
# the cap bounds what one such request can cost.
MAX_MESSAGE_BYTES = 4 << 20
CLIENT_PING_FLOOR_MS = 10_000   # half the SDK's 20 s keepalive: a server never GOAWAYs our default clients


@dataclass(frozen=True)
class ServerOptions:
    """Transport settings common to every edgespec server (CLI flags map 1:1)."""

    listen: str = "127.0.0.1:0"
    max_message_bytes: int = MAX_MESSAGE_BYTES
    reflection: bool | None = None          # None: on for a loopback listener only
    grace_s: float = 5.0
    keepalive_time_s: float = 20.0
    keepalive_timeout_s: float = 5.0
    ready_file: str | None = None
    first_message_timeout_s: float = 10.0   # a call whose first request message is later ends
    tls: ServerTls | None = None            # None: plaintext (loopback, or `insecure`)
    auth_tokens: str | None = None          # token file; None: no token auth
    insecure: bool = False                  # allow plaintext on a non-loopback listener
    max_connection_age_s: float | None = None   # GOAWAY a connection this old (+ grace_s for its streams)

    def __post_init__(self) -> None:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"listen: expected HOST:PORT with a port in 0..65535, got {self.listen!r}")
        if self.max_connection_age_s is not None and self.max_connection_age_s <= 0:
            raise ValueError(f"max_connection_age_s must be > 0, got {self.max_connection_age_s}")
        if self.first_message_timeout_s <= 0:
            raise ValueError(f"first_message_timeout_s must be > 0, got {self.first_message_timeout_s}")
        if self.tls is None and not self.insecure and not is_loopback(self.listen):
            raise ValueError(f"listen: {self.listen} is not a loopback address; serve it with TLS "
                             "(--tls-cert/--tls-key) or say --insecure")

    @property
    def serves_reflection(self) -> bool:
        return is_loopback(self.listen) if self.reflection is None else self.reflection


def keepalive_options(time_s: float, timeout_s: float) -> list[tuple[str, int]]:
    """Keepalive that gRPC honours: a ping every `time_s` (also with no call running), and the
    transport closed when an ack is `timeout_s` late. In grpc >= 1.5x the ack deadline of a sent
    ping is `grpc.http2.ping_timeout_ms` (default 60 s), not `keepalive_timeout_ms`: both are set,
    or a frozen peer or a blackholed link goes unnoticed for a minute."""
    return [("grpc.keepalive_time_ms", int(time_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(timeout_s * 1000)),
            ("grpc.http2.ping_timeout_ms", int(timeout_s * 1000)),
            ("grpc.keepalive_permit_without_calls", 1)]


def channel_options(opts: ServerOptions | None = None) -> list[tuple[str, int]]:
    """Client channel options: keepalive so a cut link or a frozen peer is detected within
    keepalive time + timeout, size limits."""
    opts = opts or ServerOptions()
    return [*keepalive_options(opts.keepalive_time_s, opts.keepalive_timeout_s),
            ("grpc.max_receive_message_length", opts.max_message_bytes),
            ("grpc.max_send_message_length", opts.max_message_bytes)]


def _server_options(opts: ServerOptions) -> list[tuple[str, int]]:
    """Size limits, the server's own keepalive (frees the sessions of a vanished client), and a
    ping policy that admits clients configured like ours (pings at half our interval are fine:
    anything stricter answers GOAWAY too_many_pings)."""
    ping_floor_ms = max(500, min(int(opts.keepalive_time_s * 500), CLIENT_PING_FLOOR_MS))
    age = [] if opts.max_connection_age_s is None else [
        ("grpc.max_connection_age_ms", int(opts.max_connection_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(opts.grace_s * 1000))]
    return [*age, ("grpc.max_receive_message_length", opts.max_message_bytes),
            ("grpc.max_send_message_length", opts.max_message_bytes),
            *keepalive_options(opts.keepalive_time_s, opts.keepalive_timeout_s),
            ("grpc.http2.min_ping_interval_without_data_ms", ping_floor_ms),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", ping_floor_ms)]


class RunningServer:
    """A started server: its bound address, health servicer and shutdown."""

    def __init__(self, server: grpc.aio.Server, address: str, health_servicer: health.aio.HealthServicer,
                 grace_s: float) -> None:
        self.server, self.address, self.health, self.grace_s = server, address, health_servicer, grace_s

    async def stop(self, on_drain: Callable[[], Awaitable[None]] | None = None) -> None:
        """NOT_SERVING; let live sessions finish (`on_drain`, or open RPCs) within the grace
        period; then cancel whatever is left and stop."""
        await self.health.enter_graceful_shutdown()
        if on_drain is None:
            await self.server.stop(self.grace_s)
            return
        try:
            await asyncio.wait_for(on_drain(), self.grace_s)
        except TimeoutError:
            log.warning("grace period over: cancelling the sessions still live")
        await self.server.stop(0)

    async def wait_for_signal(self, on_drain: Callable[[], Awaitable[None]] | None = None) -> None:
        """Serve until SIGINT/SIGTERM (or the server ends), then shut down gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        waiter = asyncio.create_task(self.server.wait_for_termination())
        signalled = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, signalled}, return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down %s", self.address)
        await self.stop(on_drain)
        waiter.cancel()
        signalled.cancel()


async def start_server(opts: ServerOptions, register: Callable[[grpc.aio.Server], Sequence[str]],
                       on_error: ErrorHook | None = None) -> RunningServer:
    """Build, register (`register` adds servicers, returns their full names) and start a server;
    `on_error` hears of every error status it answers (metrics)."""
    interceptors: list[grpc.aio.ServerInterceptor] = [
        StatusInterceptor(on_error or ignore_errors, opts.first_message_timeout_s)]
    if opts.auth_tokens:  # first in the chain: no handler runs for a call without a known token
        interceptors.insert(0, AuthInterceptor(TokenTable(opts.auth_tokens), on_error or ignore_errors))
    credentials = opts.tls.credentials() if opts.tls is not None else None
    server = grpc.aio.server(interceptors=interceptors, options=_server_options(opts))
    services = list(register(server))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*services, health.SERVICE_NAME]
    if opts.serves_reflection:
        reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
    if credentials is None:
        port = server.add_insecure_port(opts.listen)
    else:
        port = server.add_secure_port(opts.listen, credentials)
    if port == 0:
        raise OSError(f"listen: cannot bind {opts.listen}")
    await server.start()
    for name in ["", *services]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    address = f"{opts.listen.rsplit(':', 1)[0]}:{port}"
    if opts.ready_file:
        tmp = pathlib.Path(opts.ready_file + ".tmp")
        tmp.write_text(address)
        tmp.replace(opts.ready_file)
    log.info("serving %s on %s (%s%s)", ", ".join(services), address,
             "plaintext" if credentials is None else "mTLS" if opts.tls.client_ca else "TLS",
             ", token auth" if opts.auth_tokens else "")
    return RunningServer(server, address, health_servicer, opts.grace_s)
