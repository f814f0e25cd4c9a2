"""The fuzz suite, CI-sized: >= 1,000 hypothesis-drawn cases (random / truncated / bit-flipped
bytes, every field at its extremes, protocol-order violations, oversize messages;
`edgespec.suites.fuzz_cases`) at every RPC of real target, draft and standalone orchestrator
processes on loopback (tiny preset), 8 at a time, beside victim sessions. No case may get
UNKNOWN / INTERNAL / UNAVAILABLE / DATA_LOSS or hang (hypothesis shrinks a failing batch and
prints its seed); afterwards every process is up, the victims are unchanged, no session is left
live, a generation is correct and the server logs hold no error. The full-sized run (>= 10,000)
is `edgespec bench fuzz`."""

from __future__ import annotations

from edgespec.suites.fuzz_cases import BY_NAME, FAMILIES
from edgespec.bench.fuzz import fuzz_servers
from edgespec.suites.fuzz_run import FuzzRun, fuzz

CASES = 1000


def test_a_thousand_fuzzed_messages_leave_the_servers_intact():
    with fuzz_servers() as servers:
        run = FuzzRun(servers)
        try:
            outcomes = fuzz(run, CASES)   # raises on the first problem, shrunk by hypothesis
            aftermath = run.finish()
        finally:
            run.close()
    assert len(outcomes) >= CASES
    assert {o.rpc for o in outcomes} == set(BY_NAME)          # every RPC was hit
    assert {o.family for o in outcomes} == set(FAMILIES)      # by every family
    assert [o for o in outcomes if o.problem] == []
    statuses = {o.status for o in outcomes}
    assert {"OK", "INVALID_ARGUMENT", "FAILED_PRECONDITION"} <= statuses, statuses   # the cases reach the checks
    assert run.failures(aftermath) == []
    victims = aftermath["victims"]
    assert victims["target_rounds"] > 0 and victims["drafter_rounds"] > 0 and victims["generations"]["runs"] > 0
