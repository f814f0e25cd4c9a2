"""Runs fuzz cases (`fuzz_cases.py`) against real target, draft and standalone orchestrator
processes on loopback (tiny preset; `edgespec.bench.fuzz.fuzz_servers` starts them), for
tests/services/test_fuzz.py and `edgespec bench fuzz` alike: `FuzzRun` sends each case as raw
bytes over a generic stream call (identity serializers, grpc's sync API) and reads back its
status; `fuzz` lets hypothesis draw the cases in concurrent batches. A case goes wrong
(`Outcome.problem`) on UNKNOWN, INTERNAL, UNAVAILABLE or DATA_LOSS, a traceback in the details,
or a hang (the client's own deadline); a server process that exits, a victim that changes
(`fuzz_victims.py`), a live session left behind, a wrong generation afterwards or an error in a
server log fail the run (`FuzzRun.failures`). It judges statuses only: which code a given input
deserves is the servers' own tests' business.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import grpc

from edgespec.suites.fuzz_cases import BY_NAME, Case, cases
from edgespec.suites.fuzz_victims import Victims
from edgespec.suites.proc_stats import proc_stats
from edgespec.v1 import common_pb2, draft_pb2_grpc, target_pb2_grpc

DEADLINE_S = 30.0           # per case; a case still running then is a hang
MAX_READS = 16              # responses read before an accepted call is cancelled (bounds its cost)
BAD_CODES = ("UNKNOWN", "INTERNAL", "UNAVAILABLE", "DATA_LOSS")
LOG_ERRORS = ("Traceback", " ERROR ", " CRITICAL ")   # server log lines that fail a run
CHANNEL_OPTIONS = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]


@dataclass(frozen=True)
class Outcome:
    rpc: str
    family: str
    status: str          # the status code's name, or HANG
    details: str
    seconds: float
    responses: int
    cut_short: bool      # accepted and still answering after MAX_READS responses: cancelled by us

    @property
    def problem(self) -> str | None:
        if self.status == "HANG":
            return f"no status within {DEADLINE_S:g} s"
        if self.status in BAD_CODES:
            return f"{self.status}: {self.details}"
        if "Traceback" in self.details:
            return f"traceback in the details of {self.status}"
        return None

    def to_dict(self) -> dict:
        return asdict(self)


def _session_id(case: Case, response: bytes) -> str:
    message = BY_NAME[case.rpc].response.FromString(response)
    return message.opened.session_id if message.WhichOneof("kind") == "opened" else ""


class FuzzRun:
    """Channels to the three servers, the victims, and a private event loop on its own thread
    (hypothesis calls in synchronously; the cases and victims run concurrently on that loop)."""

    def __init__(self, servers) -> None:
        self.servers = servers
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-loop", daemon=True)
        self.thread.start()
        self.channels: dict[str, grpc.aio.Channel] = self.call(self._channels())
        self.sync_channels = {role: grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
                              for role, address in servers.addresses.items()}
        self.pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="fuzz-case")
        self.vocab = self.call(self._info("target")).vocab_size
        self.victims = self.call(self._victims())   # its calls belong to the fuzz loop: made on it
        self.call(self.victims.start())
        self.stats_before = self.proc_stats()

    def call(self, coro, timeout: float | None = None):
        """Run `coro` on the fuzz loop; wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _victims(self) -> Victims:
        return Victims(self.channels, self.servers.addresses)

    async def _channels(self) -> dict[str, grpc.aio.Channel]:
        return {role: grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
                for role, address in self.servers.addresses.items()}

    async def _info(self, role: str) -> common_pb2.ModelInfo:
        stub = (target_pb2_grpc.VerifierStub if role == "target" else draft_pb2_grpc.DrafterStub)(self.channels[role])
        return await stub.Info(common_pb2.InfoRequest(), timeout=10)

    def proc_stats(self) -> dict[str, dict]:
        return {role: proc_stats(proc.pid).to_dict() for role, proc in self.servers.procs.items()
                if proc.poll() is None}

    def dead(self) -> list[str]:
        """Server processes that have exited, with their exit codes."""
        return [f"{role} exited with {proc.returncode}" for role, proc in self.servers.procs.items()
                if proc.poll() is not None]

    def run_case(self, case: Case) -> Outcome:
        """Send the case's messages, half-close, read to the end (at most MAX_READS answers).
        On grpc's sync API: grpc.aio turns a write that races the server's end of the call into
        the call's own status (INTERNAL "Internal error from Core", grpc/grpc#36066), hiding the
        status the server sent."""
        rpc = BY_NAME[case.rpc]
        opened, own = threading.Event(), [""]

        def requests():
            for i, send in enumerate(case.sends):
                yield send.payload(own[0], self.victims.session_id)
                if i == 0 and case.wait_opened:
                    opened.wait(DEADLINE_S)

        start, responses, cut_short = time.monotonic(), 0, False
        call = self.sync_channels[rpc.server].stream_stream(rpc.path)(requests(), timeout=DEADLINE_S)
        try:
            for response in call:
                responses += 1
                if responses == 1 and case.wait_opened:
                    own[0] = _session_id(case, response)
                    opened.set()
                if responses >= MAX_READS:
                    cut_short = True
                    call.cancel()
                    break
            code, details = (grpc.StatusCode.OK, "") if cut_short else (call.code(), call.details())
        except grpc.RpcError as error:
            code, details = error.code(), error.details()
        finally:
            opened.set()
        seconds = time.monotonic() - start
        hang = code == grpc.StatusCode.DEADLINE_EXCEEDED and seconds >= DEADLINE_S * 0.99
        return Outcome(case.rpc, case.family, "HANG" if hang else code.name, details or "", round(seconds, 4),
                       responses, cut_short)

    def run_batch(self, batch: list[Case]) -> list[Outcome]:
        """Run the cases concurrently, one thread each."""
        return list(self.pool.map(self.run_case, batch))

    async def _live_sessions(self) -> dict[str, int]:
        """Live sessions on the target and the draft, once both reach 0 (or after 10 s)."""
        live: dict[str, int] = {}
        for _ in range(100):
            live = {role: (await self._info(role)).live_sessions for role in ("target", "draft")}
            if not any(live.values()):
                break
            await asyncio.sleep(0.1)
        return live

    def finish(self) -> dict:
        """Stop the victims and check the aftermath: processes, victims, live sessions, memory."""
        victims = self.call(self.victims.finish(), timeout=300)
        return {"dead": self.dead(), "victims": victims, "live_sessions": self.call(self._live_sessions()),
                "log_errors": {role: lines[:20] for role, lines in self.servers.log_lines(*LOG_ERRORS).items()
                               if lines},
                "before": self.stats_before, "after": self.proc_stats()}

    def failures(self, aftermath: dict) -> list[str]:
        """What in `finish()`'s aftermath says the servers did not survive intact."""
        v = aftermath["victims"]
        checks = {"a server process exited": aftermath["dead"], "a victim failed": v["errors"],
                  "the Verifier victim's tokens changed": not v["target_same"],
                  "the Drafter victim's blocks changed": not v["drafter_same"],
                  "a victim generation differed": v["generations"]["same"] != v["generations"]["runs"],
                  "a generation after the fuzz differed": not v["after_same"],
                  "the generation is not the target's greedy output": not v["baseline_is_target_greedy"],
                  "sessions left live": any(aftermath["live_sessions"].values()),
                  "errors in the server logs": aftermath["log_errors"]}
        return [f"{what}: {checks[what]}" for what in checks if checks[what]]

    def close(self) -> None:
        async def close_channels() -> None:
            for channel in self.channels.values():
                await channel.close()
        self.call(close_channels())
        for channel in self.sync_channels.values():
            channel.close()
        self.pool.shutdown()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def fuzz(run: FuzzRun, n_cases: int, batch: int = 8, seed: int | None = None, stop_on_problem: bool = True,
         progress: Callable[[list[Outcome]], None] | None = None) -> list[Outcome]:
    """Let hypothesis draw >= `n_cases` cases, `batch` at a time run concurrently. With
    `stop_on_problem` a problem or a dead server raises (hypothesis then shrinks the batch to a
    minimal failing one); otherwise every outcome is collected. Returns all outcomes."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as seeded
    from hypothesis import strategies as st

    outcomes: list[Outcome] = []

    @settings(max_examples=math.ceil(n_cases / batch), database=None, deadline=None,
              suppress_health_check=list(HealthCheck),
              phases=(Phase.generate, Phase.shrink) if stop_on_problem else (Phase.generate,))
    @given(st.lists(cases(run.vocab), min_size=batch, max_size=batch))
    def example(drawn: list[Case]) -> None:
        got = run.run_batch(drawn)
        outcomes.extend(got)
        if progress is not None:
            progress(got)
        if stop_on_problem:
            bad = [f"{case.rpc}/{case.family}: {o.problem}" for case, o in zip(drawn, got) if o.problem]
            assert not bad and not run.dead(), f"{bad} {run.dead()}"

    (seeded(seed)(example) if seed is not None else example)()
    return outcomes
