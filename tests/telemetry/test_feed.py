"""The round feed: the exact 3-frame layout and header trace context on the wire, a body that
round-trips and is type-checked, publishing that never blocks (a subscriber that never reads, or
none at all), and bad addresses as one-line ValueErrors."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import zmq
from edgespec.telemetry.feed import FeedSubscriber, RoundEvent, RoundFeed

CONTRACT_BODY = {"session", "round", "k", "accepted", "tokens", "rtt_ms", "draft_ms", "verify_ms", "round_ms",
                 "rule", "lossless", "server", "bytes_up", "bytes_down", "time"}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
JOIN_ATTEMPTS = 2000  # publishes (10 ms apart at most) before we give up on a subscriber joining


def event(round_: int = 0, session: str = "s1") -> RoundEvent:
    return RoundEvent(session=session, round=round_, k=4, accepted=3, tokens=4, rtt_ms=51.5, draft_ms=7.25,
                      verify_ms=12.0, round_ms=75.5, rule="exact", lossless=True, server=False,
                      bytes_up=812, bytes_down=64, time=1700000000.5)


def publish_until(feed: RoundFeed, receive, carrier=None):
    """Slow joiner: keep publishing until the subscriber gets one; return what it got."""
    for i in range(JOIN_ATTEMPTS):
        feed.publish(event(i), carrier or {})
        got = receive()
        if got is not None:
            return got
    raise AssertionError("the subscriber never received a message")


@pytest.fixture
def feed():
    with RoundFeed("tcp://127.0.0.1:0") as f:
        yield f


def test_body_fields_are_the_contract_and_round_trip():
    e = event()
    body = json.loads(e.to_json())
    assert set(body) == CONTRACT_BODY == {f.name for f in dataclasses.fields(RoundEvent)}
    assert RoundEvent.from_json(e.to_json()) == e
    assert RoundEvent.from_json(e.to_json().encode()) == e
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.k = 5  # type: ignore[misc]


@pytest.mark.parametrize("change, field", [
    ({"k": True}, "k"), ({"round": -1}, "round"), ({"rtt_ms": "fast"}, "rtt_ms"), ({"lossless": 1}, "lossless"),
    ({"session": 7}, "session"), ({"rtt_ms": float("nan")}, "rtt_ms"),
])
def test_from_json_names_the_bad_field(change, field):
    body = {**json.loads(event().to_json()), **change}
    with pytest.raises(ValueError, match=f"'{field}'"):
        RoundEvent.from_json(json.dumps(body))


def test_from_json_rejects_missing_fields_and_non_objects():
    body = json.loads(event().to_json())
    del body["bytes_down"]
    with pytest.raises(ValueError, match="missing field 'bytes_down'"):
        RoundEvent.from_json(json.dumps(body))
    for bad in ("[1, 2]", "not json", b"\xff"):
        with pytest.raises(ValueError, match="round event"):
            RoundEvent.from_json(bad)


def test_unknown_body_keys_are_ignored():
    body = {**json.loads(event().to_json()), "future_field": [1]}
    assert RoundEvent.from_json(json.dumps(body)) == event()


def test_frames_on_the_wire_and_trace_context(feed):
    raw = zmq.Context.instance().socket(zmq.SUB)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(feed.address)
    raw.subscribe(b"")  # everything the feed sends, not only what the helper filters
    carrier = {"traceparent": TRACEPARENT, "tracestate": "vendor=1", "baggage": "not=carried"}
    try:
        frames = publish_until(feed, lambda: raw.recv_multipart() if raw.poll(10) else None, carrier)
    finally:
        raw.close()
    assert len(frames) == 3 and frames[0] == b"round"
    assert json.loads(frames[1]) == {"v": 1, "traceparent": TRACEPARENT, "tracestate": "vendor=1"}
    got = RoundEvent.from_json(frames[2])
    assert dataclasses.replace(got, round=0) == event()
    assert feed.published >= 1


def test_subscriber_helper_and_header_without_a_span(feed):
    assert feed.address.startswith("tcp://127.0.0.1:") and not feed.address.endswith(":0")
    with FeedSubscriber(feed.address) as sub:
        header, got = publish_until(feed, lambda: sub.receive(0.01))
        assert header == {"v": 1}
        assert isinstance(got, RoundEvent) and got.session == "s1"
        while sub.receive(0.05) is not None:
            pass
        assert sub.receive(0.01) is None


def test_ipc_address(tmp_path):
    with RoundFeed(f"ipc://{tmp_path}/feed.sock") as feed, FeedSubscriber(feed.address) as sub:
        assert feed.address == f"ipc://{tmp_path}/feed.sock"
        _, got = publish_until(feed, lambda: sub.receive(0.01))
        assert got.k == 4


def test_a_stalled_subscriber_neither_blocks_publish_nor_starves_the_others():
    """One subscriber never reads; another reads everything. ~6 MB go out: far beyond the
    stalled one's queue and the kernel buffers behind it. Every publish returns at once, and the
    reader still gets every event, in order (ZMQ drops for the stalled subscriber only)."""
    batches, batch = 20, 1000
    with RoundFeed("tcp://127.0.0.1:0", hwm=batch + 100) as feed, \
            FeedSubscriber(feed.address, rcvhwm=1) as stalled, FeedSubscriber(feed.address) as reader:
        publish_until(feed, lambda: stalled.receive(0.01))  # both connected (slow joiner) ...
        publish_until(feed, lambda: reader.receive(0.01))
        while reader.receive(0.05) is not None:  # ... and the reader drained; the stalled one never reads
            pass
        got = []
        for b in range(batches):
            for i in range(batch):
                feed.publish(event(b * batch + i))
            while len(got) < (b + 1) * batch and (message := reader.receive(5.0)) is not None:
                got.append(message[1].round)
        assert got == list(range(batches * batch))
        stalled_got = 0
        while stalled.receive(0.2) is not None:
            stalled_got += 1
        assert stalled_got < batches * batch  # the stalled subscriber really lost events meanwhile


def test_no_subscriber_at_all_is_fine():
    with RoundFeed("tcp://127.0.0.1:0", hwm=1) as feed:
        for i in range(10_000):
            feed.publish(event(i))
        assert feed.published == 10_000  # PUB discards: nobody to queue for


def test_malformed_messages_raise_one_clear_error(feed):
    raw = zmq.Context.instance().socket(zmq.PUB)
    raw.setsockopt(zmq.LINGER, 0)
    raw.bind("tcp://127.0.0.1:0")
    address = raw.getsockopt(zmq.LAST_ENDPOINT).decode()
    good = [b"round", b'{"v":1}', event().to_json().encode()]
    try:
        with FeedSubscriber(address) as sub:
            for _ in range(JOIN_ATTEMPTS):
                raw.send_multipart(good)
                if sub.receive(0.01) is not None:
                    break
            for bad, match in (([b"round", b"{}"], "3 frames"), ([b"rounds", *good[1:]], "3 frames"),
                               ([b"round", b"[]", good[2]], "header"), ([b"round", b"{}", b"{}"], "missing")):
                raw.send_multipart(bad)
                with pytest.raises(ValueError, match=match):
                    while sub.receive(5.0) is not None:
                        pass  # the good ones still queued from joining
    finally:
        raw.close()


@pytest.mark.parametrize("address", ["127.0.0.1:5557", "udp://127.0.0.1:5557", "tcp://127.0.0.1",
                                     "tcp://127.0.0.1:99999", "tcp://:5557", "ipc://", "tcp://nosuchhost.invalid:0x"])
def test_bad_addresses_are_one_line_value_errors(address):
    for open_ in (RoundFeed, FeedSubscriber):
        with pytest.raises(ValueError) as info:
            open_(address)
        assert address in str(info.value) and "\n" not in str(info.value)


def test_port_zero_only_binds_and_a_busy_port_is_a_value_error(feed):
    with pytest.raises(ValueError, match="1..65535"):
        FeedSubscriber("tcp://127.0.0.1:0")
    with pytest.raises(ValueError, match=re.escape(feed.address)) as info:
        RoundFeed(feed.address)
    assert "in use" in str(info.value)


def test_the_send_queue_is_always_bounded():
    with pytest.raises(ValueError, match="hwm"):
        RoundFeed("tcp://127.0.0.1:0", hwm=0)
