"""Status mapping: an unexpected exception answers INTERNAL without naming Python's exception
class or message (the server logs them); listen addresses are validated before binding."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from edgespec.rpc.errors import abort_for
from edgespec.rpc.server import ServerOptions


class _Context:
    async def abort(self, code, details):
        raise RuntimeError((code, details))


async def test_internal_errors_say_nothing_of_the_exception():
    with pytest.raises(RuntimeError) as info:
        await abort_for(AttributeError("'NoneType' object has no attribute 'rollback'"), _Context())
    code, details = info.value.args[0]
    assert code == grpc.StatusCode.INTERNAL
    assert details == "internal error; the server logged the details"


@pytest.mark.parametrize("listen", ["127.0.0.1:70001", "127.0.0.1:-1", "127.0.0.1", ":50051", "host:http"])
def test_listen_ports_are_validated(listen):
    with pytest.raises(ValueError, match="listen: expected HOST:PORT with a port in 0..65535"):
        ServerOptions(listen=listen)


def test_good_listen_addresses_pass():
    for listen in ("127.0.0.1:0", "0.0.0.0:65535", "[::1]:50051", "localhost:50051"):
        assert ServerOptions(listen=listen, insecure=True).listen == listen


def test_keepalive_options_gRPC_honours_and_a_ping_policy_that_admits_our_clients():
    from edgespec.rpc.server import _server_options, channel_options
    from edgespec_client.call import DEFAULT_CHANNEL_OPTIONS
    client = dict(channel_options(ServerOptions(keepalive_time_s=20.0, keepalive_timeout_s=5.0)))
    assert client["grpc.http2.ping_timeout_ms"] == client["grpc.keepalive_timeout_ms"] == 5000
    assert client["grpc.keepalive_permit_without_calls"] == 1
    sdk = dict(DEFAULT_CHANNEL_OPTIONS)
    assert sdk["grpc.http2.ping_timeout_ms"] == sdk["grpc.keepalive_timeout_ms"]
    for keepalive_s in (1.0, 20.0, 120.0):   # a server with any keepalive admits the SDK's pings
        server = dict(_server_options(ServerOptions(keepalive_time_s=keepalive_s)))
        assert server["grpc.http2.min_recv_ping_interval_without_data_ms"] <= sdk["grpc.keepalive_time_ms"] / 2
        assert server["grpc.keepalive_permit_without_calls"] == 1


async def test_a_unary_call_the_transport_already_ended_is_not_an_internal_error(caplog):
    """A request over the size limit is refused by gRPC itself (RESOURCE_EXHAUSTED) before the
    handler sees it: the handler's request stream just ends. Answering that call again is
    impossible, so it must not log an internal error or count one (it used to: abort on a
    finished call raised, and the second abort logged a traceback and counted INTERNAL)."""
    import logging

    from edgespec.rpc.server import start_server
    errors: list[tuple[str, str]] = []

    async def echo(request: bytes, context) -> bytes:
        return request

    def register(server) -> list[str]:
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "test.Echo", {"Unary": grpc.unary_unary_rpc_method_handler(echo)})])
        return ["test.Echo"]

    running = await start_server(ServerOptions(max_message_bytes=1024), register,
                                 lambda method, code: errors.append((method, code)))
    try:
        with caplog.at_level(logging.ERROR):
            async with grpc.aio.insecure_channel(running.address) as channel:
                unary = channel.unary_unary("/test.Echo/Unary")
                assert await unary(b"ok", timeout=5) == b"ok"
                for _ in range(5):
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await unary(bytes(4096), timeout=5)
                    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                await asyncio.sleep(0.2)   # the handlers of the refused calls have run
    finally:
        await running.stop()
    assert not [e for e in errors if e[1] == "INTERNAL"], errors
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


class _Request:
    """A request type whose live instances can be counted (grpc.aio's receiver keeps the last
    message of a request stream that was not read to its end)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    @classmethod
    def parse(cls, data: bytes) -> _Request:
        return cls(data)


async def test_refused_unary_requests_are_not_kept_and_a_second_message_is_refused():
    """A unary request served as a stream is read to its end: after 20 refused calls no request
    object survives (before the fix each one stayed, with its bytes); a raw client sending two
    messages on a unary method gets INVALID_ARGUMENT naming the rule."""
    import gc

    from edgespec.rpc.server import start_server

    async def refuse(request: _Request, context):   # an async generator, as Generate is
        if request.data:
            raise ValueError("prompt_token_ids: too many")
        yield b""

    def register(server) -> list[str]:
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Refuse", {
            "Stream": grpc.unary_stream_rpc_method_handler(refuse, request_deserializer=_Request.parse)})])
        return ["test.Refuse"]

    running = await start_server(ServerOptions(), register)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            call = channel.unary_stream("/test.Refuse/Stream")
            for _ in range(20):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    async for _ in call(bytes(1 << 16), timeout=5):
                        pass
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            await asyncio.sleep(0.2)
            gc.collect()
            assert sum(isinstance(o, _Request) for o in gc.get_objects()) <= 2   # grpc keeps at most the latest
            raw = channel.stream_stream("/test.Refuse/Stream")()
            await raw.write(b"one")
            await raw.write(b"two")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await raw.read()
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "exactly one request message" in info.value.details()
    finally:
        await running.stop()
