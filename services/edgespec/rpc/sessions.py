"""SessionRegistry: live sessions by unguessable id, with a cap overall and per caller
(RESOURCE_EXHAUSTED beyond either) and an idle TTL after which a session is closed and forgotten
(NOT_FOUND afterwards). The TTL is short (`open_ttl_s`) until the session's first block, so idle
opens cannot hold the slots; a session inside `busy()` (a round being computed, however long) is
never idle. `requests()` reads a session's stream with the same deadline, so a stream that stops
sending ends instead of lingering. Holds whatever per-session object a service keeps; knows
nothing about models or gRPC (a caller is whatever string the service identifies it by).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)
S = TypeVar("S")


class SessionNotFound(KeyError):
    """Unknown, closed or expired session id (-> NOT_FOUND)."""

    def __str__(self) -> str:
        return str(self.args[0])


class SessionLimitError(RuntimeError):
    """Too many live sessions (-> RESOURCE_EXHAUSTED)."""


@dataclass
class _Entry(Generic[S]):
    session: S
    caller: str = ""
    last_used: float = field(default_factory=time.monotonic)
    busy: int = 0                    # rounds running now: a busy session is not idle
    started: bool = False            # a block has run: the full idle TTL applies


class SessionRegistry(Generic[S]):
    """id -> session, capped at `max_sessions` (and `max_per_caller` for each named caller; 0: no
    such cap), reaped after `open_ttl_s` without a first block, `idle_ttl_s` without use after."""

    def __init__(self, max_sessions: int, idle_ttl_s: float, open_ttl_s: float | None = None,
                 max_per_caller: int = 0) -> None:
        self.max_sessions, self.max_per_caller = max_sessions, max_per_caller
        self.idle_ttl_s = idle_ttl_s
        self.open_ttl_s = idle_ttl_s if open_ttl_s is None else min(open_ttl_s, idle_ttl_s)
        self._entries: dict[str, _Entry[S]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def open(self, session: S, caller: str = "") -> str:
        """Register `session` for `caller` ("": an anonymous caller, not capped per caller)."""
        if len(self._entries) >= self.max_sessions:
            raise SessionLimitError(f"session limit reached ({self.max_sessions} live sessions); retry later")
        if caller and self.max_per_caller:
            held = sum(entry.caller == caller for entry in self._entries.values())
            if held >= self.max_per_caller:
                raise SessionLimitError(f"session limit per caller reached ({held} live sessions of "
                                        f"{self.max_per_caller} allowed); retry later")
        session_id = secrets.token_hex(16)
        self._entries[session_id] = _Entry(session, caller)
        return session_id

    def ttl(self, session_id: str) -> float:
        """The session's idle TTL now: short until its first block (NOT_FOUND when gone)."""
        entry = self._entries.get(session_id)
        if entry is None:
            raise SessionNotFound(f"session_id: unknown, closed or expired session {session_id[:8]!r}")
        return self.idle_ttl_s if entry.started else self.open_ttl_s

    async def requests(self, session_id: str, messages: AsyncIterator) -> AsyncIterator:
        """`messages`, each awaited for at most the session's TTL: a stream that stops sending
        ends with NOT_FOUND (its session closed), not held open."""
        while True:
            ttl = self.ttl(session_id)
            try:
                async with asyncio.timeout(ttl):  # no task per message, unlike wait_for
                    message = await anext(messages)
            except StopAsyncIteration:
                return
            except TimeoutError:
                await self.close(session_id)
                raise SessionNotFound(f"session_id: session closed after {ttl:g} s without a message") from None
            entry = self._entries.get(session_id)
            if entry is not None:
                entry.started = True
            yield message

    def get(self, session_id: str) -> S:
        entry = self._entries.get(session_id)
        if entry is None:
            raise SessionNotFound(f"session_id: unknown, closed or expired session {session_id[:8]!r}")
        entry.last_used = time.monotonic()
        return entry.session

    @contextmanager
    def busy(self, session_id: str) -> Iterator[S]:
        """The session (NOT_FOUND when gone), kept from the reaper while the block runs; its idle
        clock restarts when the block ends."""
        session = self.get(session_id)
        entry = self._entries[session_id]
        entry.busy += 1
        try:
            yield session
        finally:
            entry.busy -= 1
            entry.last_used = time.monotonic()

    async def close(self, session_id: str) -> None:
        entry = self._entries.pop(session_id, None)
        if entry is not None:
            await _close(entry.session)

    async def close_all(self) -> None:
        for session_id in list(self._entries):
            await self.close(session_id)

    async def reap_forever(self, every_s: float = 1.0) -> None:
        """Close sessions idle for longer than the TTL (never one inside `busy`); run as a
        background task."""
        every_s = min(every_s, self.open_ttl_s / 4)
        while True:
            await asyncio.sleep(every_s)
            now = time.monotonic()
            for session_id, entry in list(self._entries.items()):
                ttl = self.idle_ttl_s if entry.started else self.open_ttl_s
                if not entry.busy and now - entry.last_used > ttl:
                    log.info("closing idle session %s", session_id[:8])
                    await self.close(session_id)


async def _close(session: Any) -> None:
    close = getattr(session, "close", None)
    if close is not None:
        await close()
