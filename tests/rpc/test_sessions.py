"""SessionRegistry: the cap, close (the session's own close runs once), the idle TTL."""

from __future__ import annotations

import asyncio

import pytest

from edgespec.rpc.sessions import SessionLimitError, SessionNotFound, SessionRegistry


class Session:
    def __init__(self) -> None:
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


async def test_open_get_close_and_not_found_afterwards():
    registry: SessionRegistry[Session] = SessionRegistry(max_sessions=4, idle_ttl_s=60)
    a, b = Session(), Session()
    ida, idb = registry.open(a), registry.open(b)
    assert ida != idb and len(ida) == 32 and len(registry) == 2
    assert registry.get(ida) is a and registry.get(idb) is b
    await registry.close(ida)
    assert a.closed == 1 and b.closed == 0 and len(registry) == 1
    with pytest.raises(SessionNotFound, match="session_id"):
        registry.get(ida)
    await registry.close(ida)                                   # closing twice is a no-op
    assert a.closed == 1


async def test_the_cap_refuses_one_more_and_frees_a_slot_on_close():
    registry: SessionRegistry[Session] = SessionRegistry(max_sessions=2, idle_ttl_s=60)
    first = registry.open(Session())
    registry.open(Session())
    with pytest.raises(SessionLimitError, match="2 live sessions"):
        registry.open(Session())
    await registry.close(first)
    registry.open(Session())
    assert len(registry) == 2


async def test_close_all_closes_every_session():
    registry: SessionRegistry[Session] = SessionRegistry(max_sessions=8, idle_ttl_s=60)
    sessions = [Session() for _ in range(3)]
    for s in sessions:
        registry.open(s)
    await registry.close_all()
    assert len(registry) == 0 and [s.closed for s in sessions] == [1, 1, 1]


async def test_an_idle_session_is_reaped_and_a_used_one_is_kept():
    registry: SessionRegistry[Session] = SessionRegistry(max_sessions=8, idle_ttl_s=0.15)
    idle, busy = Session(), Session()
    idle_id, busy_id = registry.open(idle), registry.open(busy)
    reaper = asyncio.create_task(registry.reap_forever(every_s=0.02))
    try:
        for _ in range(12):                                     # 0.3 s, touching `busy` every 25 ms
            await asyncio.sleep(0.025)
            registry.get(busy_id)
    finally:
        reaper.cancel()
    assert idle.closed == 1 and busy.closed == 0
    with pytest.raises(SessionNotFound):
        registry.get(idle_id)
    assert registry.get(busy_id) is busy


async def test_a_busy_session_is_never_reaped_and_its_clock_restarts_after():
    registry: SessionRegistry[Session] = SessionRegistry(max_sessions=8, idle_ttl_s=0.1)
    working = Session()
    session_id = registry.open(working)
    reaper = asyncio.create_task(registry.reap_forever(every_s=0.02))
    try:
        with registry.busy(session_id) as session:
            assert session is working
            await asyncio.sleep(0.4)                            # four TTLs inside one long block
        assert working.closed == 0 and registry.get(session_id) is working
        await asyncio.sleep(0.3)                                # idle after the block: reaped
    finally:
        reaper.cancel()
    assert working.closed == 1
    with pytest.raises(SessionNotFound):
        with registry.busy(session_id):
            pass


async def test_a_caller_may_hold_only_its_share_and_anonymous_callers_are_not_capped():
    registry: SessionRegistry[Session] = SessionRegistry(max_sessions=6, idle_ttl_s=60, max_per_caller=2)
    first = registry.open(Session(), "token:alice")
    registry.open(Session(), "token:alice")
    with pytest.raises(SessionLimitError, match="per caller"):
        registry.open(Session(), "token:alice")
    registry.open(Session(), "ip:10.0.0.7")                       # another caller still gets in
    registry.open(Session(), "")
    registry.open(Session(), "")
    registry.open(Session(), "")                                  # anonymous: only the global cap
    with pytest.raises(SessionLimitError, match="6 live sessions"):
        registry.open(Session(), "ip:10.0.0.8")
    await registry.close(first)
    registry.open(Session(), "token:alice")


async def test_the_ttl_is_short_until_the_first_message():
    registry: SessionRegistry[Session] = SessionRegistry(max_sessions=4, idle_ttl_s=60, open_ttl_s=0.1)
    waiting, working = Session(), Session()
    waiting_id, working_id = registry.open(waiting), registry.open(working)
    messages = asyncio.Queue()

    async def stream():
        while True:
            yield await messages.get()
    await messages.put("block")
    reader = registry.requests(working_id, stream())
    assert await anext(reader) == "block" and registry.ttl(working_id) == 60
    assert registry.ttl(waiting_id) == 0.1
    silent = registry.requests(waiting_id, stream())
    with pytest.raises(SessionNotFound, match="0.1 s without a message"):
        await anext(silent)                                       # ends the stream, closes the session
    assert waiting.closed == 1 and working.closed == 0 and len(registry) == 1


def test_peer_host_identifies_remote_peers_and_leaves_loopback_anonymous():
    from edgespec.rpc.caller import peer_host
    assert peer_host("ipv4:10.0.0.7:5123") == "ip:10.0.0.7"
    assert peer_host("ipv6:[2001:db8::1]:443") == "ip:2001:db8::1"
    assert peer_host("ipv4:127.0.0.1:5123") == peer_host("ipv6:[::1]:5123") == ""
    assert peer_host("unix:/tmp/sock") == peer_host("") == peer_host("ipv4:garbage:1") == ""
