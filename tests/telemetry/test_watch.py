"""`edgespec watch`: WatchState's numbers computed by hand (tau, rates, per-position acceptance,
lost rounds), what `render` shows, and `run_watch` against a real publisher, on a TTY and not,
stopping on --count, --duration and Ctrl-C."""

from __future__ import annotations

import argparse
import io
import queue
import threading

import pytest
from edgespec.telemetry import watch
from edgespec.telemetry.feed import FeedSubscriber, RoundEvent, RoundFeed
from edgespec.telemetry.watch import CLEAR_HOME, WatchState, add_watch_flags, run_watch

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def ev(session: str, round_: int, k: int, accepted: int, tokens: int, rtt_ms: float = 10.0,
       server: bool = False, rule: str = "exact", lossless: bool = True) -> RoundEvent:
    return RoundEvent(session=session, round=round_, k=k, accepted=accepted, tokens=tokens, rtt_ms=rtt_ms,
                      draft_ms=1.0, verify_ms=2.0, round_ms=3.0, rule=rule, lossless=lossless, server=server,
                      bytes_up=100, bytes_down=10, time=0.0)


@pytest.fixture
def state() -> WatchState:
    s = WatchState(window_s=10.0)
    s.add(ev("a", 0, 4, 4, 5, rtt_ms=10.0), {"v": 1, "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}, at=0.0)
    s.add(ev("a", 1, 4, 1, 2, rtt_ms=20.0), at=1.0)
    s.add(ev("a", 3, 2, 0, 1, rtt_ms=30.0), at=2.0)                # round 2 lost
    s.add(ev("b", 5, 0, 0, 1, rtt_ms=40.0, server=True, rule="typical", lossless=False), at=3.0)
    return s


def test_numbers_by_hand(state):
    o, a, b = state.overall, state.sessions["a"], state.sessions["b"]
    assert (o.rounds, o.spec_rounds, a.rounds, b.rounds) == (4, 3, 3, 1)
    assert o.tau == pytest.approx((5 + 2 + 1) / 3) and a.tau == o.tau  # server rounds are not speculative
    assert b.tau is None
    assert o.mean_rtt_ms == pytest.approx(25.0) and a.mean_rtt_ms == pytest.approx(20.0)
    # position i: rounds with k > i, and of those, accepted > i
    assert a.drafted_at == [3, 3, 2, 2] and a.accepted_at == [2, 1, 1, 1]
    assert a.acceptance() == pytest.approx([2 / 3, 1 / 3, 1 / 2, 1 / 2])
    assert b.acceptance() == []
    assert (o.lost, a.lost, b.lost) == (1, 1, 0)  # b joined at round 5: not a loss
    assert a.trace_id == TRACE_ID and b.trace_id == ""
    assert (o.latest.session, a.latest.round) == ("b", 3)


def test_render_shows_the_numbers(state):
    text = state.render(width=120, now=3.0)
    assert "rounds 4" in text and "tau 2.67" in text and "rtt 25.0 ms" in text and "lost 1 " in text
    assert "rule typical (lossy)" in text and "k srv" in text  # the latest round overall
    assert "0.67 (2/3)" in text and "0.33 (1/3)" in text and "0.50 (1/2)" in text
    assert "█" in text and TRACE_ID in text
    rows = {line.split()[0]: line.split() for line in text.splitlines()[-2:]}
    assert rows["a"][:7] == ["a", "3", "1.0", "2.67", "20.0", "2", "exact"]
    assert rows["b"][:7] == ["b", "1", "1.0", "-", "40.0", "srv", "typical*"]
    assert text.splitlines()[-2].startswith("b ")  # most recently seen first
    assert max(len(line) for line in state.render(width=40, now=3.0).splitlines()) <= 40


def test_most_recent_session_first_and_rows_limit():
    s = WatchState()
    for i in range(5):
        s.add(ev(f"s{i}", 0, 2, 2, 3), at=float(i))
    text = s.render(width=120, now=5.0, rows=2)
    sessions = [line.split()[0] for line in text.splitlines() if line.startswith("s") and "rounds" not in line]
    assert sessions == ["s4", "s3"] and "... 3 more sessions" in text


def test_bars_scale_with_the_fraction():
    s = WatchState()
    for accepted in (2, 2, 2, 0):
        s.add(ev("a", s.overall.rounds, 2, accepted, accepted + 1), at=0.0)
    bars = [line for line in s.render(width=60, now=1.0).splitlines() if "(" in line and "/" in line]
    full = [line.count("█") for line in bars]
    assert len(bars) == 2 and full[0] == full[1] > 0  # 3/4 at both positions
    assert bars[0].endswith("0.75 (3/4)")


def test_gaps_count_lost_rounds_only_after_the_first_seen():
    s = WatchState()
    for r in (5, 6, 9, 7, 10, 14):  # joined at 5; 7, 8 missing then 7 arrives late: not double counted
        s.add(ev("a", r, 1, 1, 2), at=0.0)
    assert s.sessions["a"].lost == 2 + 3 and s.overall.lost == 5


def test_rounds_per_second_over_the_window():
    s = WatchState(window_s=10.0)
    for t in range(20):  # one round a second for 20 s, then three in the last second for session b
        s.add(ev("a", t, 1, 1, 2), at=float(t))
    for t in (19.1, 19.2, 19.3):
        s.add(ev("b", int(t * 10), 1, 1, 2), at=t)
    assert s.sessions["a"].rate(19.5) == pytest.approx(10 / 10)   # arrivals 10..19 in (9.5, 19.5]
    assert s.sessions["b"].rate(19.5) == pytest.approx(3 / 1.0)   # younger than 1 s: over 1 s
    assert s.overall.rate(19.5) == pytest.approx(13 / 10)
    assert s.sessions["a"].rate(40.0) == 0.0                      # nothing in the window: decays to 0
    assert "1.3 r/s" in s.render(now=19.5)


def test_server_rounds_do_not_enter_tau_or_the_bars():
    s = WatchState()
    s.add(ev("a", 0, 1, 0, 1, server=True), at=0.0)
    s.add(ev("a", 1, 3, 3, 4), at=1.0)
    assert s.overall.tau == 4.0 and s.overall.drafted_at == [1, 1, 1]


def test_old_sessions_are_forgotten_beyond_the_cap():
    s = WatchState(max_sessions=3)
    for i in range(5):
        s.add(ev(f"s{i}", 0, 1, 1, 2), at=float(i))
    s.add(ev("s2", 3, 1, 1, 2), at=6.0)  # seen again: most recent, gap counted
    assert list(s.sessions) == ["s3", "s4", "s2"] and set(s.last_round) == set(s.sessions)
    assert s.overall.rounds == 6 and s.overall.lost == 2


def args_for(address: str, *extra: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_watch_flags(p)
    return p.parse_args([address, *extra])


def test_flags_and_their_checks():
    a = args_for("tcp://127.0.0.1:5557")
    assert (a.address, a.count, a.duration, a.interval, a.window, a.rows) == ("tcp://127.0.0.1:5557", 0, 0.0,
                                                                              0.5, 10.0, 20)
    for bad in (["--count", "-1"], ["--interval", "0"], ["--window", "0"], ["--duration", "-2"], ["--rows", "-1"]):
        with pytest.raises(ValueError):
            run_watch(args_for("tcp://127.0.0.1:5557", *bad))


def test_a_bad_address_is_one_line_naming_it():
    with pytest.raises(ValueError, match="'udp://x:1'") as info:
        run_watch(args_for("udp://x:1"))
    assert "\n" not in str(info.value)


class Publisher(threading.Thread):
    """A real feed in a thread, publishing consecutive rounds until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.address: queue.Queue[str] = queue.Queue()
        self.stop = threading.Event()

    def run(self) -> None:
        with RoundFeed("tcp://127.0.0.1:0") as feed:
            self.address.put(feed.address)
            r = 0
            while not self.stop.wait(0.002):
                feed.publish(ev("live", r, 4, 3, 4), {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})
                r += 1


@pytest.fixture
def publisher():
    pub = Publisher()
    pub.start()
    yield pub.address.get(timeout=30)
    pub.stop.set()
    pub.join(timeout=30)


def test_run_watch_with_count_against_a_real_publisher(publisher, capsys):
    assert run_watch(args_for(publisher, "--count", "25", "--interval", "0.05", "--duration", "120")) == 0
    out = capsys.readouterr().out
    last = out.split("edgespec watch ")[-1]  # not a TTY: snapshots appended, each under its title
    assert CLEAR_HOME not in out
    assert last.startswith(f"{publisher} ") and "events 25" in last and "rounds 25" in last
    assert "tau 4.00" in last and "1.00 (25/25)" in last and "0.00 (0/25)" in last
    assert "live" in last and TRACE_ID in last


def test_run_watch_on_a_tty_clears_and_redraws(publisher, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    monkeypatch.setattr("sys.stdout", term)
    assert run_watch(args_for(publisher, "--count", "5", "--interval", "0.01", "--duration", "120")) == 0
    frames = term.getvalue().split(CLEAR_HOME)
    assert frames[0] == "" and len(frames) >= 2  # every view starts on a cleared screen
    assert "events 5" in frames[-1] and "rounds 5" in frames[-1]


def test_run_watch_stops_after_duration_without_a_publisher(capsys):
    assert run_watch(args_for("tcp://127.0.0.1:9", "--duration", "0.2", "--interval", "0.05")) == 0
    assert "events 0" in capsys.readouterr().out


def test_ctrl_c_exits_zero_with_a_last_view(monkeypatch, capsys):
    def interrupted(self, timeout_s):
        raise KeyboardInterrupt

    monkeypatch.setattr(FeedSubscriber, "receive", interrupted)
    assert run_watch(args_for("tcp://127.0.0.1:9")) == 0
    assert "events 0" in capsys.readouterr().out


def test_malformed_messages_are_counted_not_fatal(monkeypatch, capsys):
    replies = iter([ValueError("bad"), ValueError("bad"), ({"v": 1}, ev("a", 0, 1, 1, 2))])

    def receive(self, timeout_s):
        reply = next(replies)
        if isinstance(reply, Exception):
            raise reply
        return reply

    monkeypatch.setattr(watch.FeedSubscriber, "receive", receive)
    assert run_watch(args_for("tcp://127.0.0.1:9", "--count", "1")) == 0
    assert "malformed 2" in capsys.readouterr().out
