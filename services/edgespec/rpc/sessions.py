"""SessionRegistry: live sessions by unguessable id, with a cap (RESOURCE_EXHAUSTED beyond it)
and an idle TTL after which a session is closed and forgotten (NOT_FOUND afterwards). A session
inside `busy()` (a round being computed, however long) is never idle. Holds whatever per-session
object a service keeps; knows nothing about models or gRPC.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Iterator
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
    last_used: float = field(default_factory=time.monotonic)
    busy: int = 0                    # rounds running now: a busy session is not idle


class SessionRegistry(Generic[S]):
    """id -> session, capped at `max_sessions`, reaped after `idle_ttl_s` without use."""

    def __init__(self, max_sessions: int, idle_ttl_s: float) -> None:
        self.max_sessions = max_sessions
        self.idle_ttl_s = idle_ttl_s
        self._entries: dict[str, _Entry[S]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def open(self, session: S) -> str:
        if len(self._entries) >= self.max_sessions:
            raise SessionLimitError(f"session limit reached ({self.max_sessions} live sessions); retry later")
        session_id = secrets.token_hex(16)
        self._entries[session_id] = _Entry(session)
        return session_id

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
        every_s = min(every_s, self.idle_ttl_s / 4)
        while True:
            await asyncio.sleep(every_s)
            now = time.monotonic()
            for session_id, entry in list(self._entries.items()):
                if not entry.busy and now - entry.last_used > self.idle_ttl_s:
                    log.info("closing idle session %s", session_id[:8])
                    await self.close(session_id)


async def _close(session: Any) -> None:
    close = getattr(session, "close", None)
    if close is not None:
        await close()
