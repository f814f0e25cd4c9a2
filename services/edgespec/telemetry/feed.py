"""The live round feed: one ZMQ PUB message per round, for dashboards (`edgespec watch`) and estimators.

Message: 3 frames [b"round", header JSON, body JSON]; the header is {"v": 1} plus the W3C trace
context (`traceparent`, `tracestate`) when a span is live, the body is a `RoundEvent`.
Publishing never blocks decoding: the PUB socket has a bounded SNDHWM per subscriber and ZMQ
drops a message for a subscriber whose queue is full, for that subscriber only: a stalled
`watch` neither slows the loop nor starves the other subscribers. Subscribers see what they lost
as gaps in a session's round numbers (`edgespec watch` shows them). PUB/SUB also loses the first
messages after a subscriber connects (slow joiner): this is telemetry, never a channel for state
the loop needs. Sockets are not thread-safe: use a feed or subscriber from the thread (event
loop) that created it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

try:
    import zmq
except ImportError:  # pragma: no cover - pyzmq is an optional dependency
    zmq = None

TOPIC = b"round"
FEED_VERSION = 1
TRACE_KEYS = ("traceparent", "tracestate")
BARE_HEADER = b'{"v":%d}' % FEED_VERSION
MAX_PORT = 65535


@dataclass(frozen=True)
class RoundEvent:
    """The body of one round message: what the round committed and how long its parts took."""

    session: str
    round: int            # 0-based per session
    k: int                # drafted tokens
    accepted: int         # leading draft tokens kept
    tokens: int           # committed this round; counts the bonus / correction
    rtt_ms: float         # round trip minus target-side time (network only)
    draft_ms: float
    verify_ms: float      # target compute
    round_ms: float
    rule: str
    lossless: bool
    server: bool          # a server-only step (the target generated alone)
    bytes_up: int
    bytes_down: int
    time: float           # unix seconds when the round ended

    def to_json(self) -> str:
        return json.dumps(vars(self), separators=(",", ":"))  # fields only; asdict() is 10x slower

    @classmethod
    def from_json(cls, data: str | bytes) -> RoundEvent:
        """Parse and type-check a body; ValueError names the first bad field. Unknown keys are ignored."""
        try:
            obj = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"round event: not JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise ValueError("round event: not a JSON object")
        return cls(**{f.name: _field_value(obj, f.name, f.type) for f in dataclasses.fields(cls)})


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_CHECKS = {  # annotation -> (accepts, converts, what it must be)
    "str": (lambda v: isinstance(v, str), str, "a string"),
    "int": (lambda v: _is_int(v) and v >= 0, int, "an integer >= 0"),
    "float": (lambda v: (_is_int(v) or isinstance(v, float)) and math.isfinite(v), float, "a finite number"),
    "bool": (lambda v: isinstance(v, bool), bool, "a boolean"),
}


def _field_value(obj: dict, name: str, annotation: str) -> Any:
    if name not in obj:
        raise ValueError(f"round event: missing field {name!r}")
    accepts, convert, what = _CHECKS[annotation]
    if not accepts(obj[name]):
        raise ValueError(f"round event: field {name!r} must be {what}, got {obj[name]!r}")
    return convert(obj[name])


def _require_zmq() -> None:
    if zmq is None:
        raise RuntimeError("the round feed needs pyzmq (pip install pyzmq)")


def _check_tcp(rest: str, bind: bool) -> str | None:
    host, sep, port = rest.rpartition(":")
    if not sep or not host:
        return "expected tcp://HOST:PORT"
    if not port.isdigit() or int(port) > MAX_PORT or (int(port) == 0 and not bind):
        return f"port must be in {0 if bind else 1}..{MAX_PORT}"
    return None


def _check_ipc(rest: str, bind: bool) -> str | None:
    return None if rest else "expected ipc://PATH"


_SCHEMES = {"tcp": _check_tcp, "ipc": _check_ipc}


def check_address(address: str, bind: bool) -> None:
    """Raise ValueError (one line naming `address`) unless it is tcp://HOST:PORT or ipc://PATH.
    Port 0 (bind only) picks a free port."""
    scheme, sep, rest = address.partition("://")
    check = _SCHEMES.get(scheme) if sep else None
    problem = check(rest, bind) if check else f"scheme must be one of {', '.join(s + '://' for s in _SCHEMES)}"
    if problem:
        raise ValueError(f"round feed address {address!r}: {problem}")


def _open(kind: int, address: str, bind: bool, options: Mapping[int, int]) -> Any:
    """A socket of `kind` with `options`, bound or connected to `address`; ValueError if that fails."""
    _require_zmq()
    check_address(address, bind)
    sock = zmq.Context.instance().socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    for option, value in options.items():
        sock.setsockopt(option, value)
    if address.startswith("tcp://["):
        sock.setsockopt(zmq.IPV6, 1)
    try:
        (sock.bind if bind else sock.connect)(address)
    except zmq.ZMQError as exc:
        sock.close()
        raise ValueError(f"round feed address {address!r}: {exc.strerror}") from None
    return sock


class _FeedSocket:
    """A ZMQ socket of the feed, closed by `close()` or on leaving a `with` block."""

    _sock: Any

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RoundFeed(_FeedSocket):
    """The publisher. `publish` is a plain non-blocking send, safe to call from an event loop."""

    def __init__(self, address: str, hwm: int = 1000) -> None:
        _require_zmq()
        if hwm < 1:
            raise ValueError(f"round feed: hwm must be >= 1 (0 would queue without bound), got {hwm}")
        self._sock = _open(zmq.PUB, address, bind=True,
                           options={zmq.SNDHWM: hwm})
        self.address: str = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.published = 0

    def publish(self, event: RoundEvent, carrier: Mapping[str, str] = {}) -> None:
        """Send one round. Never blocks or raises for slow or absent subscribers: ZMQ drops the
        message for each subscriber whose queue is full."""
        trace = {key: carrier[key] for key in TRACE_KEYS if key in carrier}
        header = json.dumps({"v": FEED_VERSION, **trace}, separators=(",", ":")).encode() if trace else BARE_HEADER
        frames = [TOPIC, header, event.to_json().encode()]
        try:
            self._sock.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:  # PUB drops instead of raising; kept so a send can never stall the loop
            return
        self.published += 1



class FeedSubscriber(_FeedSocket):
    """A SUB socket on a round feed. Messages published before it joined (and a short while after
    connecting) are not seen."""

    def __init__(self, address: str, rcvhwm: int = 10000) -> None:
        _require_zmq()
        self._sock = _open(zmq.SUB, address, bind=False, options={zmq.RCVHWM: rcvhwm})
        self._sock.setsockopt(zmq.SUBSCRIBE, TOPIC)
        self.address = address

    def receive(self, timeout_s: float) -> tuple[dict, RoundEvent] | None:
        """The next (header, event), or None after `timeout_s`. ValueError for a malformed message
        (which is consumed)."""
        if not self._sock.poll(max(0, int(timeout_s * 1000))):
            return None
        frames = self._sock.recv_multipart(flags=zmq.NOBLOCK)
        if len(frames) != 3 or frames[0] != TOPIC:
            raise ValueError(f"round feed: expected 3 frames [b'round', header, body], got {len(frames)}")
        try:
            header = json.loads(frames[1])
        except (UnicodeDecodeError, json.JSONDecodeError):
            header = None
        if not isinstance(header, dict):
            raise ValueError("round feed: the header frame is not a JSON object")
        return header, RoundEvent.from_json(frames[2])
