"""`edgespec watch ADDRESS`: a live terminal view of a round feed (see `feed`).

`WatchState` is the pure part: it folds `RoundEvent`s into per-session and overall numbers and
renders them as text. `run_watch` is the IO loop: subscribe, fold, redraw every `--interval`
seconds (ANSI clear + home on a terminal, appended snapshots otherwise). Numbers, per session and
overall: rounds and rounds/s (sliding window of arrivals), tau (mean tokens committed per
speculative round, counting the bonus), mean network RTT, the latest k and rule, per-position
acceptance (of rounds that drafted position i, the fraction that kept it) and lost rounds (gaps in
a session's round numbers after the first one seen; the slow-joiner start is not a loss).
It is not a metrics store: numbers live only as long as the process, and it reads nothing else.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections import deque
from collections.abc import Mapping

from edgespec.telemetry.feed import FeedSubscriber, RoundEvent

WINDOW_S = 10.0
MAX_POSITIONS = 64           # positions beyond this are not tallied (k is at most 32 today)
MAX_SESSIONS = 256           # least recently seen sessions are forgotten beyond this
BAR_EIGHTHS = " ▏▎▍▌▋▊▉█"
SPARK = "▁▂▃▄▅▆▇█"
CLEAR_HOME = "\x1b[H\x1b[2J"
PLAIN_WIDTH = 140            # lines of snapshots that do not go to a terminal
BARS_TITLE = "acceptance by position (of rounds that drafted token i, the fraction that kept it):"
TABLE_HEADER = (f"{'session':<14}{'rounds':>7}{'r/s':>7}{'tau':>6}{'rtt ms':>8}{'k':>5}  "
                f"{'rule*lossy':<12}{'lost':>5}  {'by position':<16} trace")


class Tally:
    """Running numbers of one session, or of all sessions together."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self.rounds = 0
        self.spec_rounds = 0
        self.spec_tokens = 0
        self.rtt_sum = 0.0
        self.drafted_at: list[int] = []    # [i] speculative rounds with k > i
        self.accepted_at: list[int] = []   # [i] of those, rounds that kept draft token i
        self.lost = 0
        self.latest: RoundEvent | None = None
        self.trace_id = ""
        self.first_at: float | None = None
        self.last_at = 0.0
        self.arrivals: deque[float] = deque()

    def add(self, event: RoundEvent, at: float) -> None:
        self.rounds += 1
        self.rtt_sum += event.rtt_ms
        self.latest, self.last_at = event, at
        self.first_at = at if self.first_at is None else self.first_at
        self.arrivals.append(at)
        while self.arrivals[0] <= at - self.window_s:
            self.arrivals.popleft()
        if event.server:
            return
        self.spec_rounds += 1
        self.spec_tokens += event.tokens
        k = min(event.k, MAX_POSITIONS)
        while len(self.drafted_at) < k:
            self.drafted_at.append(0)
            self.accepted_at.append(0)
        for i in range(k):
            self.drafted_at[i] += 1
            self.accepted_at[i] += i < event.accepted

    def rate(self, now: float) -> float:
        """Rounds per second that arrived in the window before `now`; while the first arrival is
        younger than the window, over the time since it (at least 1 s, so one event is not a burst)."""
        if self.first_at is None:
            return 0.0
        recent = sum(1 for at in self.arrivals if at > now - self.window_s)
        return recent / min(self.window_s, max(1.0, now - self.first_at))

    @property
    def tau(self) -> float | None:
        return self.spec_tokens / self.spec_rounds if self.spec_rounds else None

    @property
    def mean_rtt_ms(self) -> float | None:
        return self.rtt_sum / self.rounds if self.rounds else None

    def acceptance(self) -> list[float]:
        """[i] the fraction of speculative rounds with k > i whose draft token i was accepted."""
        return [a / d for a, d in zip(self.accepted_at, self.drafted_at)]


class WatchState:
    """Everything the view shows, folded from events; `render` is a pure function of it."""

    def __init__(self, window_s: float = WINDOW_S, max_sessions: int = MAX_SESSIONS) -> None:
        self.window_s = window_s
        self.max_sessions = max_sessions
        self.overall = Tally(window_s)
        self.sessions: dict[str, Tally] = {}
        self.last_round: dict[str, int] = {}
        self.malformed = 0

    def add(self, event: RoundEvent, header: Mapping | None = None, at: float | None = None) -> None:
        """Fold one event in; `at` is its arrival (monotonic seconds, default now)."""
        at = time.monotonic() if at is None else at
        tally = self.sessions.pop(event.session, None) or Tally(self.window_s)
        self.sessions[event.session] = tally             # most recently seen last
        last = self.last_round.get(event.session)
        if last is not None and event.round > last + 1:
            tally.lost += event.round - last - 1
            self.overall.lost += event.round - last - 1
        self.last_round[event.session] = event.round if last is None else max(last, event.round)
        traceparent = (header or {}).get("traceparent", "")
        tally.trace_id = traceparent.split("-")[1] if traceparent.count("-") == 3 else tally.trace_id
        tally.add(event, at)
        self.overall.add(event, at)
        while len(self.sessions) > self.max_sessions:
            forgotten = next(iter(self.sessions))
            del self.sessions[forgotten], self.last_round[forgotten]

    def render(self, width: int = 100, now: float | None = None, rows: int = 20) -> str:
        """The view as text, lines cut to `width`; at most `rows` sessions, most recent first."""
        now = time.monotonic() if now is None else now
        lines = [*self._summary(now), BARS_TITLE]
        lines += _bars(self.overall, width) or ["  (no speculative rounds yet)"]
        lines += ["", TABLE_HEADER]
        recent = list(reversed(self.sessions.items()))
        lines += [self._row(name, tally, now) for name, tally in recent[:rows]]
        if len(recent) > rows:
            lines.append(f"... {len(recent) - rows} more sessions")
        return "\n".join(line[:width] for line in lines)

    def _summary(self, now: float) -> list[str]:
        o = self.overall
        return [(f"overall  sessions {len(self.sessions)}  rounds {o.rounds}  {o.rate(now):.1f} r/s  "
                 f"tau {_num(o.tau, 2)}  rtt {_num(o.mean_rtt_ms, 1)} ms  k {_k(o.latest)}  "
                 f"rule {_rule(o.latest, ' (lossy)')}"),
                f"lost {o.lost} (gaps in round numbers)  malformed {self.malformed}"]

    def _row(self, name: str, t: Tally, now: float) -> str:
        spark = "".join(SPARK[min(len(SPARK) - 1, int(f * len(SPARK)))] for f in t.acceptance()[:16])
        return (f"{name[:13]:<14}{t.rounds:>7}{t.rate(now):>7.1f}{_num(t.tau, 2):>6}"
                f"{_num(t.mean_rtt_ms, 1):>8}{_k(t.latest):>5}  {_rule(t.latest, '*')[:11]:<12}{t.lost:>5}  "
                f"{spark:<16} {t.trace_id}")


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _k(event: RoundEvent | None) -> str:
    return "-" if event is None else ("srv" if event.server else str(event.k))


def _rule(event: RoundEvent | None, lossy_mark: str) -> str:
    return "-" if event is None else event.rule + ("" if event.lossless else lossy_mark)


def _bars(t: Tally, width: int) -> list[str]:
    bar_w = max(8, min(50, width - 30))
    lines = []
    for i, frac in enumerate(t.acceptance()):
        eighths = round(frac * bar_w * 8)
        bar = "█" * (eighths // 8) + (BAR_EIGHTHS[eighths % 8] if eighths % 8 else "")
        lines.append(f"  {i + 1:>2} {bar:<{bar_w}} {frac:4.2f} ({t.accepted_at[i]}/{t.drafted_at[i]})")
    return lines


def add_watch_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("address", help="round feed to subscribe to: tcp://HOST:PORT or ipc://PATH")
    p.add_argument("--count", type=int, default=0, help="exit after N events (0: never)")
    p.add_argument("--duration", type=float, default=0.0, help="exit after S seconds (0: never)")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between redraws")
    p.add_argument("--window", type=float, default=WINDOW_S, help="seconds of the rounds/s window")
    p.add_argument("--rows", type=int, default=20, help="most sessions shown")


def _check_args(a: argparse.Namespace) -> None:
    if a.count < 0 or a.duration < 0:
        raise ValueError("--count and --duration must be >= 0")
    if a.interval <= 0 or a.window <= 0:
        raise ValueError("--interval and --window must be > 0")
    if a.rows < 0:
        raise ValueError("--rows must be >= 0")


def run_watch(args: argparse.Namespace) -> int:
    """Subscribe and redraw until --count events, --duration seconds or Ctrl-C; 0 on each."""
    _check_args(args)
    out, state, events = sys.stdout, WatchState(window_s=args.window), 0
    tty = out.isatty()
    start = time.monotonic()
    deadline = start + args.duration if args.duration else float("inf")
    next_draw = start + args.interval
    with FeedSubscriber(args.address) as sub:
        try:
            while not (args.count and events >= args.count) and time.monotonic() < deadline:
                try:
                    got = sub.receive(max(0.0, min(next_draw, deadline) - time.monotonic()))
                except ValueError:
                    state.malformed += 1
                    got = None
                if got is not None:
                    state.add(got[1], got[0])
                    events += 1
                if time.monotonic() >= next_draw:
                    _draw(out, tty, args, state, events)
                    next_draw = time.monotonic() + args.interval
        except KeyboardInterrupt:
            pass
    _draw(out, tty, args, state, events)
    return 0


def _draw(out, tty: bool, args: argparse.Namespace, state: WatchState, events: int) -> None:
    width = shutil.get_terminal_size((100, 24)).columns if tty else PLAIN_WIDTH
    title = f"edgespec watch {args.address}  {time.strftime('%H:%M:%S')}  events {events}"
    view = f"{title}\n{state.render(width, rows=args.rows)}\n"
    out.write(CLEAR_HOME + view if tty else view + "\n")
    out.flush()
