"""DelayProxy: an asyncio TCP proxy that makes a loopback hop behave like the link in a `LinkSpec`.
Per connection and direction: a token-bucket rate limit (serialization), then one-way delay plus
order-keeping jitter (propagation), and a `blackhole()` switch for partitions. It is not a packet
emulator: no loss, no reordering, no MTU; it runs in-process and needs no root or `tc netem`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket

from edgespec.net.link import LinkSpec

log = logging.getLogger(__name__)
CHUNK_BYTES = 64 << 10       # largest read per chunk
BURST_BYTES = 8 << 10        # token-bucket credit; a bigger chunk goes into debt and waits it off
QUEUE_CHUNKS = 256           # chunks in flight per direction before reading pauses (backpressure)
CLOSE_TIMEOUT_S = 2.0


def parse_address(text: str, what: str = "address") -> tuple[str, int]:
    """'HOST:PORT' (or '[v6]:PORT') -> (host, port); ValueError naming `what` otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{what}: expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def format_address(address: tuple[str, int]) -> str:
    host, port = address[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _TokenBucket:
    """Serialization delay at `rate` bytes/s with `burst` bytes of credit."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def wait_s(self, nbytes: int, now: float) -> float:
        """Take `nbytes` (going into debt if short); seconds to wait until the debt is paid."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate) - nbytes
        self.stamp = now
        return max(0.0, -self.tokens / self.rate)


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT_S)
    except (OSError, TimeoutError):
        writer.transport.abort()


class DelayProxy:
    """Listen on `listen`, forward every connection to `upstream` through the emulated `link`.

    Release time of a chunk = max(arrival + rtt/2 + U(0, jitter), previous release), so jitter
    never reorders bytes. `blackhole(True)` partitions the link: nothing passes either way and
    new connections are not forwarded; bytes already read are held, not dropped (a partition
    stalls TCP, it does not corrupt the stream), and flow again after `blackhole(False)`.
    `bytes_up` (client -> upstream) and `bytes_down` count delivered bytes.
    """

    def __init__(self, *, upstream: tuple[str, int], link: LinkSpec = LinkSpec(),
                 listen: tuple[str, int] = ("127.0.0.1", 0), seed: int | None = None) -> None:
        self.upstream, self.link, self.listen = upstream, link, listen
        self.bytes_up = self.bytes_down = 0
        self.bound: tuple[str, int] | None = None
        self._rng = random.Random(seed)
        self._link_up = asyncio.Event()
        self._link_up.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        """The bound 'HOST:PORT' (after `start()`)."""
        if self.bound is None:
            raise RuntimeError("DelayProxy is not started")
        return format_address(self.bound)

    async def start(self) -> tuple[str, int]:
        """Bind and accept connections; returns the bound (host, port)."""
        self._server = await asyncio.start_server(self._handle, *self.listen)
        self.bound = tuple(self._server.sockets[0].getsockname()[:2])
        log.info("netproxy %s -> %s (%s)", self.address, format_address(self.upstream), self.link.describe())
        return self.bound

    async def stop(self) -> None:
        """Close the listener and every connection; cancel and await all pump tasks."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    def blackhole(self, on: bool = True) -> None:
        """Partition the link (True) or heal it (False)."""
        if on:
            self._link_up.clear()
        else:
            self._link_up.set()

    async def __aenter__(self) -> DelayProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        """asyncio's per-connection callback; a cancellation by stop() ends it quietly (asyncio
        would otherwise log the cancelled task as an error)."""
        try:
            await self._connection(client_reader, client_writer)
        except asyncio.CancelledError:
            if self._server is not None:
                raise

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        """One client connection: dial upstream, run both directions until both end or one fails."""
        task = asyncio.current_task()
        self._tasks.add(task)
        self._writers.add(client_writer)
        writers = [client_writer]
        try:
            if self._server is None:
                return
            await self._link_up.wait()
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            writers.append(upstream_writer)
            self._writers.add(upstream_writer)
            for writer in writers:
                _set_nodelay(writer)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pipe(client_reader, upstream_writer, up=True))
                group.create_task(self._pipe(upstream_reader, client_writer, up=False))
        except* OSError as errors:
            log.debug("netproxy connection ended: %r", errors.exceptions[0])
        finally:
            for writer in writers:
                self._writers.discard(writer)
                await _close(writer)
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bool) -> None:
        """One direction: a receiver stamps chunks with release times, a deliverer writes them."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._receive(reader, queue))
            group.create_task(self._deliver(queue, writer, up))

    async def _receive(self, reader: asyncio.StreamReader, queue: asyncio.Queue) -> None:
        """Read chunks, pay their serialization delay, queue them with their release time; EOF
        (b"") is queued too, so the far side's write_eof waits for the data before it."""
        loop = asyncio.get_running_loop()
        rate = self.link.rate_bytes_per_s
        bucket = _TokenBucket(rate, BURST_BYTES, loop.time()) if rate else None
        released = 0.0
        while True:
            data = await reader.read(CHUNK_BYTES)
            if data and bucket is not None:
                await asyncio.sleep(bucket.wait_s(len(data), loop.time()))
            await self._link_up.wait()
            released = max(loop.time() + self._delay_s(), released)
            await queue.put((released, data))
            if not data:
                return

    async def _deliver(self, queue: asyncio.Queue, writer: asyncio.StreamWriter, up: bool) -> None:
        """Sleep until each chunk's release time, then write it (held while blackholed)."""
        loop = asyncio.get_running_loop()
        while True:
            release, data = await queue.get()
            await asyncio.sleep(max(0.0, release - loop.time()))
            await self._link_up.wait()
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
            if up:
                self.bytes_up += len(data)
            else:
                self.bytes_down += len(data)

    def _delay_s(self) -> float:
        jitter = self._rng.uniform(0.0, self.link.jitter_ms) if self.link.jitter_ms else 0.0
        return (self.link.one_way_ms + jitter) / 1000
