"""The victims of a fuzz run: well-behaved clients that keep working beside the fuzzer and must
come out unchanged — a Verifier session (one k = 0 round at a time, so its verdicts are the
target's own greedy tokens), a Drafter session (fixed commits, so its blocks are deterministic)
and SDK generations through the embedded and the standalone orchestrator. `finish` replays both
sessions on fresh, undisturbed sessions and compares. Used by `fuzz_run.py`; sends no fuzz.
"""

from __future__ import annotations

import asyncio

import grpc

from edgespec.suites.fuzz_cases import PROMPT
from edgespec.v1 import common_pb2, draft_pb2, draft_pb2_grpc, target_pb2, target_pb2_grpc
from edgespec_client import AsyncClient

PERIOD_S = 0.4                    # between a victim's rounds (sessions must outlive long runs)
MAX_ROUNDS = 4000                 # below the sessions' max_new_tokens (4096)
COMMITS = (72, 69, 76, 79, 32, 87, 82, 68)   # tokens the Drafter victim is told were committed
GENERATION_TOKENS = 24


def _open(max_new: int = 4096) -> common_pb2.SessionOpen:
    return common_pb2.SessionOpen(prompt_token_ids=PROMPT, acceptance="exact", max_new_tokens=max_new)


class _TargetSession:
    """A greedy Verifier session driven one k = 0 round at a time (each verdict: the next token)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.call = target_pb2_grpc.VerifierStub(channel).Session()
        self.session_id, self.tokens = "", []

    async def open(self) -> None:
        await self.call.write(target_pb2.VerifierRequest(open=_open()))
        self.session_id = (await self.call.read()).opened.session_id

    async def round(self) -> None:
        block = common_pb2.DraftBlock(session_id=self.session_id, round=len(self.tokens))
        await self.call.write(target_pb2.VerifierRequest(block=block))
        self.tokens.append((await self.call.read()).verdict.token)

    async def close(self) -> None:
        await self.call.done_writing()
        while await self.call.read() is not grpc.aio.EOF:
            pass


class _DrafterSession:
    """A greedy Drafter session: propose k = 2, commit the next of COMMITS; records the blocks."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.call = draft_pb2_grpc.DrafterStub(channel).Session()
        self.blocks: list[tuple[int, ...]] = []

    async def open(self) -> None:
        await self.call.write(draft_pb2.DrafterRequest(open=_open()))
        await self.call.read()

    async def round(self) -> None:
        await self.call.write(draft_pb2.DrafterRequest(propose=draft_pb2.ProposeRequest(k=2)))
        self.blocks.append(tuple((await self.call.read()).block.token_ids))
        n = len(self.blocks) - 1
        verdict = common_pb2.Verdict(round=n, accepted=0, token=COMMITS[n % len(COMMITS)])
        await self.call.write(draft_pb2.DrafterRequest(commit=verdict))
        await self.call.read()

    close = _TargetSession.close


class Victims:
    """Start with `start`, keep running beside the fuzz, end with `finish` (a summary dict)."""

    def __init__(self, channels: dict[str, grpc.aio.Channel], addresses: dict[str, str]) -> None:
        self.channels, self.addresses = channels, addresses
        self.target = _TargetSession(channels["target"])
        self.drafter = _DrafterSession(channels["draft"])
        self.baseline: list[int] = []
        self.generations = {"runs": 0, "same": 0}
        self.errors: list[str] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    @property
    def session_id(self) -> str:
        return self.target.session_id

    async def generate(self, role: str) -> list[int]:
        async with AsyncClient(self.addresses[role], timeout=60) as client:
            result = await client.generate(prompt_token_ids=list(PROMPT), max_new_tokens=GENERATION_TOKENS, k=3)
        return list(result.token_ids)

    async def start(self) -> None:
        self.baseline = await self.generate("draft")
        await self.target.open()
        await self.drafter.open()
        self._tasks = [asyncio.create_task(self._loop(self.target.round)),
                       asyncio.create_task(self._loop(self.drafter.round)),
                       asyncio.create_task(self._loop(self._generations))]

    async def _generations(self) -> None:
        for role in ("draft", "orchestrator"):
            same = await self.generate(role) == self.baseline
            self.generations["runs"] += 1
            self.generations["same"] += same

    async def _loop(self, step) -> None:
        rounds = 0
        try:
            while not self._stop.is_set() and rounds < MAX_ROUNDS:
                await step()
                rounds += 1
                try:
                    await asyncio.wait_for(self._stop.wait(), PERIOD_S)
                except TimeoutError:
                    pass
        except Exception as exc:  # noqa: BLE001 - a victim that fails is a finding, reported
            self.errors.append(f"{step.__qualname__}: {exc!r}"[:500])

    async def finish(self) -> dict:
        """Stop the victims; replay their sessions undisturbed; the summary of what matched."""
        self._stop.set()
        await asyncio.gather(*self._tasks)
        await self.target.close()
        await self.drafter.close()
        control_target = _TargetSession(self.channels["target"])
        control_drafter = _DrafterSession(self.channels["draft"])
        await control_target.open()
        await control_drafter.open()
        for _ in range(max(len(self.target.tokens), GENERATION_TOKENS)):
            await control_target.round()
        for _ in self.drafter.blocks:
            await control_drafter.round()
        await control_target.close()
        await control_drafter.close()
        after = {role: await self.generate(role) for role in ("draft", "orchestrator")}
        n = len(self.target.tokens)
        return {"target_rounds": n, "target_same": control_target.tokens[:n] == self.target.tokens,
                "drafter_rounds": len(self.drafter.blocks),
                "drafter_same": control_drafter.blocks == self.drafter.blocks,
                "generations": dict(self.generations),
                "after_same": all(tokens == self.baseline for tokens in after.values()),
                "baseline_is_target_greedy": self.baseline == control_target.tokens[:len(self.baseline)],
                "errors": list(self.errors)}
