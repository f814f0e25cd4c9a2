"""Token auth for every edgespec server: a token file (`TOKEN [NAME [SERVICE,...]]` per line,
`#` comments; NAME defaults to `token-<line>`, SERVICES restrict the token to those services),
re-read when it changes so tokens rotate without a restart, and the server interceptor that
answers UNAUTHENTICATED (no or unknown `authorization: Bearer` token) or PERMISSION_DENIED (a
service the token may not call) before any handler runs — so before any session exists. Token
lookups compare digests against every entry, in time independent of which (if any) matched.
The caller's token NAME (never the token) becomes its identity for per-caller session limits.
Health checks stay open (probes carry no token). It does NOT do TLS (`rpc/security.py`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from dataclasses import dataclass

import grpc

from edgespec.rpc.caller import CALLER

log = logging.getLogger(__name__)
OPEN_METHODS = ("/grpc.health.v1.Health/",)
RELOAD_EVERY_S = 1.0


@dataclass(frozen=True)
class TokenEntry:
    digest: bytes                       # sha256 of the token: the token itself is not kept
    name: str
    services: frozenset[str] = frozenset()   # short names (Verifier, Drafter, Orchestrator); empty: all

    def allows(self, method: str) -> bool:
        service = method.split("/")[1] if method.count("/") >= 2 else method
        return not self.services or service.rsplit(".", 1)[-1] in self.services


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_tokens(text: str, source: str = "auth_tokens") -> tuple[TokenEntry, ...]:
    """Entries of a token file's text (ValueError names the line, never echoes a token)."""
    entries, names = [], set()
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) > 3:
            raise ValueError(f"{source}: line {number}: expected TOKEN [NAME [SERVICE,...]]")
        token, name = fields[0], fields[1] if len(fields) > 1 else f"token-{number}"
        if len(token) < 16:
            raise ValueError(f"{source}: line {number}: a token must be at least 16 characters")
        if name in names:
            raise ValueError(f"{source}: line {number}: the name {name!r} is used twice")
        names.add(name)
        services = frozenset(s for s in fields[2].split(",") if s) if len(fields) > 2 else frozenset()
        entries.append(TokenEntry(_digest(token), name, services))
    if not entries:
        raise ValueError(f"{source}: no tokens")
    return tuple(entries)


class TokenTable:
    """The tokens of a file, re-read (at most once a second) when its modification time changes;
    a file that turns unreadable or invalid keeps the last good tokens (and says so in the log)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._mtime, self._checked = self._stat(), time.monotonic()
        self.entries = self._load()

    def _stat(self) -> float:
        try:
            return os.stat(self.path).st_mtime_ns
        except OSError as exc:
            raise ValueError(f"auth_tokens: cannot read {self.path!r} ({exc.strerror})") from None

    def _load(self) -> tuple[TokenEntry, ...]:
        with open(self.path, encoding="utf-8") as f:
            return parse_tokens(f.read())

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < RELOAD_EVERY_S:
            return
        self._checked = now
        try:
            mtime = self._stat()
            if mtime != self._mtime:
                self.entries, self._mtime = self._load(), mtime
                log.info("auth tokens reloaded from %s (%d tokens)", self.path, len(self.entries))
        except (OSError, ValueError) as exc:
            log.warning("auth tokens: keeping the previous tokens: %s", exc)

    def lookup(self, token: str | None) -> TokenEntry | None:
        """The entry of `token` (None: unknown), comparing against every entry."""
        self._refresh()
        digest = _digest(token or "")
        found = None
        for entry in self.entries:
            if hmac.compare_digest(entry.digest, digest) and token:
                found = entry
        return found


def bearer(metadata) -> str | None:
    """The token of an `authorization: Bearer TOKEN` header, if any."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value[:7].lower() == "bearer ":
            return value[7:].strip()
    return None


def _denied(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, details: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape that only aborts."""
    if handler.response_streaming:
        async def behaviour(request, context):
            await context.abort(code, details)
            yield  # pragma: no cover - an async generator that never yields
    else:
        async def behaviour(request, context):
            await context.abort(code, details)
    return _replace(handler, behaviour)


def _as_caller(handler: grpc.RpcMethodHandler, caller: str) -> grpc.RpcMethodHandler:
    """The handler, run with CALLER set to `caller` (per-caller limits read it)."""
    inner = _behaviour(handler)
    if handler.response_streaming:
        async def behaviour(request, context):
            CALLER.set(caller)
            async for response in inner(request, context):
                yield response
    else:
        async def behaviour(request, context):
            CALLER.set(caller)
            return await inner(request, context)
    return _replace(handler, behaviour)


def _kind(handler: grpc.RpcMethodHandler) -> str:
    return (("stream" if handler.request_streaming else "unary") + "_"
            + ("stream" if handler.response_streaming else "unary"))


def _behaviour(handler: grpc.RpcMethodHandler):
    return getattr(handler, _kind(handler))


def _replace(handler: grpc.RpcMethodHandler, behaviour) -> grpc.RpcMethodHandler:
    return handler._replace(**{_kind(handler): behaviour})


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Checks every call's bearer token against `tokens` (health checks excepted); `on_error`
    hears of each refusal (method, status code name), like the status interceptor's errors."""

    def __init__(self, tokens: TokenTable, on_error=lambda method, code: None) -> None:
        self.tokens, self.on_error = tokens, on_error

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_METHODS):
            return handler
        entry = self.tokens.lookup(bearer(handler_call_details.invocation_metadata))
        if entry is None:
            self.on_error(method, grpc.StatusCode.UNAUTHENTICATED.name)
            return _denied(handler, grpc.StatusCode.UNAUTHENTICATED,
                           "authorization: a known bearer token is required (authorization: Bearer TOKEN)")
        if not entry.allows(method):
            self.on_error(method, grpc.StatusCode.PERMISSION_DENIED.name)
            return _denied(handler, grpc.StatusCode.PERMISSION_DENIED,
                           f"authorization: token {entry.name!r} may not call {method.split('/')[1]}")
        return _as_caller(handler, f"token:{entry.name}")
