"""Exception -> gRPC status mapping, and the server interceptor that applies it to every handler
(unary and streaming), answers undecodable request bytes with INVALID_ARGUMENT instead of
gRPC's default UNKNOWN + parser message, and bounds the wait for a call's first request message.
No business logic here.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from google.protobuf.message import DecodeError

from edgespec.core.types import SessionStateError
from edgespec.models.kv_pool import KVPoolExhausted
from edgespec.rpc.sessions import SessionLimitError, SessionNotFound

log = logging.getLogger(__name__)

STATUS_OF: dict[type[BaseException], grpc.StatusCode] = {
    SessionNotFound: grpc.StatusCode.NOT_FOUND,
    SessionLimitError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    KVPoolExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    SessionStateError: grpc.StatusCode.FAILED_PRECONDITION,
    ValueError: grpc.StatusCode.INVALID_ARGUMENT,
    TimeoutError: grpc.StatusCode.DEADLINE_EXCEEDED,
    ConnectionError: grpc.StatusCode.UNAVAILABLE,
}


class _Malformed:
    """Sentinel the guarded deserializer returns for undecodable bytes."""


MALFORMED = _Malformed()


ErrorHook = Callable[[str, str], None]  # (method, status code name) of every error answered


def status_of(exc: BaseException) -> grpc.StatusCode:
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code()
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return grpc.StatusCode.INTERNAL


async def abort_for(exc: Exception, context: grpc.aio.ServicerContext) -> None:
    if isinstance(exc, grpc.aio.AioRpcError):  # an upstream service failed: pass its status on
        await context.abort(exc.code(), f"upstream: {exc.details()}")
    if isinstance(exc, TimeoutError):
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "upstream: no answer within the round timeout")
    code = status_of(exc)
    if code is grpc.StatusCode.INTERNAL:
        log.exception("internal error")  # the details stay in the server's log
        await context.abort(code, "internal error; the server logged the details")
    await context.abort(code, str(exc))


async def refuse(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str,
                 count: Callable[[grpc.StatusCode], None], abort: Callable[[], Awaitable] | None = None) -> None:
    """Abort the call with `code` (`abort`: how, default `details`) and count it. When gRPC can no
    longer send a status because the transport already ended the call (a request over the size
    limit, a client gone), the handler just ends: nothing was answered, so nothing is counted
    or logged as an error (aborting again would raise "Abort already called!")."""
    try:
        await (abort() if abort is not None else context.abort(code, details))
    except grpc.aio.AbortError:
        count(code)
        raise
    except Exception as exc:  # noqa: BLE001 - grpc's ExecuteBatchError: no status can be sent any more
        raise asyncio.CancelledError(f"{code.name} not sent: the call had already ended") from exc


def _guard(deserializer: Callable | None) -> Callable | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes):
        try:
            return deserializer(data)
        except DecodeError:
            return MALFORMED
    return deserialize


async def _checked(requests: AsyncIterator, context: grpc.aio.ServicerContext,
                   count: Callable[[grpc.StatusCode], None], first_message_s: float) -> AsyncIterator:
    """The requests, the first awaited for at most `first_message_s` (DEADLINE_EXCEEDED: a call
    that never sends is not held open), each checked to have decoded."""
    try:
        request = await asyncio.wait_for(anext(requests), first_message_s)
    except StopAsyncIteration:
        return
    except TimeoutError:
        await refuse(context, grpc.StatusCode.DEADLINE_EXCEEDED,
                     f"no request message within {first_message_s:g} s of the call's start", count)
    while True:
        if request is MALFORMED:
            await refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "malformed request message", count)
        yield request
        request = await anext(requests, _END)
        if request is _END:
            return


_END = object()


def _wrap(handler: grpc.RpcMethodHandler, method: str, on_error: ErrorHook,
          first_message_s: float) -> grpc.RpcMethodHandler:
    """Wrap whichever behaviour the handler has with decode checks, a first-message deadline and
    status mapping. A unary-request handler is served as a streaming-request one (the same bytes
    on the wire), so that its one message, too, is awaited with a deadline."""
    if handler.unary_unary or handler.unary_stream:
        name = "unary_unary" if handler.unary_unary else "unary_stream"
    else:
        name = "stream_unary" if handler.stream_unary else "stream_stream"
    inner = getattr(handler, name)
    streaming_request, streaming_response = name.startswith("stream"), name.endswith("stream")

    def count(code: grpc.StatusCode) -> None:
        on_error(method, code.name)

    async def fail(exc: Exception, context) -> None:
        await refuse(context, status_of(exc), "", count, lambda: abort_for(exc, context))

    async def prepare(requests, context):
        checked = _checked(requests, context, count, first_message_s)
        if streaming_request:
            return checked
        request = await anext(checked, None)
        if request is None:
            await refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "the call ended without its request message", count)
        # Read the request stream to its end (a unary client half-closes with its message): until
        # then grpc.aio's receiver keeps the message, and a refused 4 MiB request would stay in memory.
        try:
            extra = await asyncio.wait_for(anext(checked, None), first_message_s)
        except TimeoutError:
            extra = _END
        if extra is not None:
            await refuse(context, grpc.StatusCode.INVALID_ARGUMENT,
                         "a unary call carries exactly one request message, then ends its request stream", count)
        return request

    if streaming_response:
        async def behaviour(request, context):
            try:
                result = inner(await prepare(request, context), context)
                if inspect.isawaitable(result):  # a servicer that writes with context.write()
                    await result
                    return
                async for response in result:
                    yield response
            except (grpc.aio.AbortError, GeneratorExit):
                raise
            except Exception as exc:  # noqa: BLE001 - mapped to a status
                await fail(exc, context)
    else:
        async def behaviour(request, context):
            try:
                return await inner(await prepare(request, context), context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - mapped to a status
                await fail(exc, context)
    served_as = name if streaming_request else "stream" + name.removeprefix("unary")
    return handler._replace(request_deserializer=_guard(handler.request_deserializer), request_streaming=True,
                            **{name: None, served_as: behaviour})


def ignore_errors(method: str, code: str) -> None:
    pass


class StatusInterceptor(grpc.aio.ServerInterceptor):
    """Maps exceptions to status codes and malformed bytes to INVALID_ARGUMENT for every RPC, and
    ends a call whose first request message does not come within `first_message_s`
    (DEADLINE_EXCEEDED); `on_error` hears of each error answered (the errors-by-code metric)."""

    def __init__(self, on_error: ErrorHook = ignore_errors, first_message_s: float = 10.0) -> None:
        self.on_error, self.first_message_s = on_error, first_message_s

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return _wrap(handler, handler_call_details.method, self.on_error, self.first_message_s)
