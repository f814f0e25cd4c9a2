"""Bad input against real servers (tiny preset): every malformed or out-of-range request gets the
documented gRPC status with a message naming the field, the failed session is freed, and the
servers keep serving other sessions (a session opened before the bad call carries on, and a fresh
generation still works)."""

from __future__ import annotations

import asyncio
import math
import re

import grpc
import numpy as np
import pytest

from edgespec.v1 import common_pb2, draft_pb2, draft_pb2_grpc, target_pb2, target_pb2_grpc
from edgespec_client import AsyncClient, EdgespecError, InvalidArgumentError

T = 10.0                    # per-call timeout, seconds
PROMPT = [76, 73, 80, 80]   # "hell" in the tiny tokenizer
VOCAB = 320                 # tiny preset vocabulary
HIDDEN = 64                 # tiny preset hidden size
GARBAGE = b"\xff\xff\xff"   # not a protobuf message: truncated varint of field 31


# ---------------------------------------------------------------------------------------------
# helpers

def _open_msg(**fields) -> target_pb2.VerifierRequest:
    spec = dict(prompt_token_ids=PROMPT, acceptance="exact", max_new_tokens=16)
    return target_pb2.VerifierRequest(open=common_pb2.SessionOpen(**{**spec, **fields}))


def _block(session_id: str, round_: int = 0, tokens=(5, 6), **fields) -> target_pb2.VerifierRequest:
    return target_pb2.VerifierRequest(block=common_pb2.DraftBlock(
        session_id=session_id, round=round_, token_ids=list(tokens), **fields))


def _hidden(shape, nbytes: int | None = None) -> common_pb2.Tensor:
    data = np.zeros(shape, dtype="<f2").tobytes()
    return common_pb2.Tensor(dtype=common_pb2.DTYPE_FLOAT16, shape=list(shape),
                             data=data if nbytes is None else bytes(nbytes))


async def _open(channel, **fields):
    """Open a target session; return (call, session_id)."""
    call = target_pb2_grpc.VerifierStub(channel).Session(timeout=T)
    await call.write(_open_msg(**fields))
    response = await call.read()
    assert response.WhichOneof("kind") == "opened"
    return call, response.opened.session_id


async def _fails(call, request, code: grpc.StatusCode, *words: str) -> str:
    """Send `request` (None: end the stream) and read: the stream must fail with `code`, and the
    details must contain every word. Returns the details."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        if request is None:
            await call.done_writing()
        else:
            await call.write(request)
        response = await call.read()
        pytest.fail(f"expected {code.name}, got {response}")
    details = info.value.details() or ""
    assert info.value.code() == code, details
    for word in words:
        assert word in details, details
    return details


async def _until(predicate, timeout_s: float = 5.0) -> None:
    """Poll `predicate` until true (bounded); fail otherwise."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


async def _generates(address: str) -> None:
    """A good greedy generation through the SDK still works."""
    async with AsyncClient(address, timeout=T) as c:
        result = await c.generate(prompt_token_ids=PROMPT, max_new_tokens=6, k=3)
    assert 1 <= len(result.token_ids) <= 6
    assert result.stats.target_forward_passes == 1 + result.stats.rounds


async def _still_serving(stack, live_call=None, live_id: str = "") -> None:
    """The failed session is freed, a session opened before the failure carries on, and a fresh
    generation works."""
    if live_call is not None:
        await live_call.write(_block(live_id))
        verdict = (await live_call.read()).verdict
        assert verdict.round == 0 and verdict.counters.forward_passes == 2
        await live_call.done_writing()
        assert await live_call.read() == grpc.aio.EOF
    await _until(lambda: len(stack.target_servicer.sessions) == 0)
    await _generates(stack.draft_address)


# ---------------------------------------------------------------------------------------------
# undecodable bytes

async def test_garbage_bytes_on_target_session(stack, target_channel):
    live = await _open(target_channel)
    raw = target_channel.stream_stream("/edgespec.v1.Verifier/Session",
                                       request_serializer=None, response_deserializer=None)
    details = await _fails(raw(timeout=T), GARBAGE, grpc.StatusCode.INVALID_ARGUMENT)
    assert details == "malformed request message"  # no parser internals
    await _still_serving(stack, *live)


async def test_garbage_bytes_mid_session_frees_it(stack, target_channel):
    raw = target_channel.stream_stream("/edgespec.v1.Verifier/Session",
                                       request_serializer=None, response_deserializer=None)
    call = raw(timeout=T)
    await call.write(_open_msg().SerializeToString())
    opened = target_pb2.VerifierResponse.FromString(await call.read())
    assert len(stack.target_servicer.sessions) == 1 and opened.opened.session_id
    details = await _fails(call, GARBAGE, grpc.StatusCode.INVALID_ARGUMENT)
    assert details == "malformed request message"
    await _still_serving(stack)


async def test_garbage_bytes_on_generate(stack):
    async with grpc.aio.insecure_channel(stack.draft_address) as channel:
        raw = channel.unary_stream("/edgespec.v1.Orchestrator/Generate",
                                   request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in raw(GARBAGE, timeout=T):
                pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "malformed request message"
    await _still_serving(stack)


async def test_garbage_bytes_on_drafter_session(stack):
    async with grpc.aio.insecure_channel(stack.draft_address) as channel:
        raw = channel.stream_stream("/edgespec.v1.Drafter/Session",
                                    request_serializer=None, response_deserializer=None)
        details = await _fails(raw(timeout=T), GARBAGE, grpc.StatusCode.INVALID_ARGUMENT)
    assert details == "malformed request message"
    await _still_serving(stack)


# ---------------------------------------------------------------------------------------------
# through the SDK

SDK_CASES = {
    "empty prompt": (dict(prompt=""), "prompt"),
    "prompt and ids": (dict(prompt="hi", prompt_token_ids=[5, 6]), "prompt"),
    "unknown acceptance": (dict(prompt="hi", acceptance="telepathy"), "acceptance"),
    "unknown draft length": (dict(prompt="hi", draft_length="psychic"), "draft_length"),
    "k too large": (dict(prompt="hi", k=33), "k"),
    "negative temperature": (dict(prompt="hi", temperature=-0.5), "temperature"),
    "nan temperature": (dict(prompt="hi", temperature=math.nan), "temperature"),
    "top_p zero": (dict(prompt="hi", temperature=0.8, top_p=0.0), "top_p"),
    "top_p above one": (dict(prompt="hi", temperature=0.8, top_p=1.5), "top_p"),
    "exact with sampling": (dict(prompt="hi", acceptance="exact", temperature=0.7), "acceptance"),
    "id outside vocab": (dict(prompt_token_ids=[5, 10**6]), "prompt_token_ids"),
    "negative id": (dict(prompt_token_ids=[-3]), "prompt_token_ids"),
    "max_new_tokens over limit": (dict(prompt="hi", max_new_tokens=5000), "max_new_tokens"),
}


@pytest.mark.parametrize("case", list(SDK_CASES))
async def test_sdk_invalid_argument(stack, client, case):
    kwargs, field = SDK_CASES[case]
    with pytest.raises(InvalidArgumentError) as info:
        await client.generate(timeout=T, **kwargs)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(rf"\b{field}\b", info.value.details), info.value.details
    await _still_serving(stack)


async def test_negative_k_rejected_client_side(client):
    with pytest.raises(InvalidArgumentError) as info:
        client.stream("hi", k=-1)  # fails while building the request, before any RPC
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT and info.value.details.startswith("k:")
    await _generates(client.address)


async def test_target_limits_come_back_through_orchestrator(stack_factory):
    stack = await stack_factory(target_overrides={"max_prompt_tokens": 16, "max_new_tokens": 8})
    async with AsyncClient(stack.draft_address, timeout=T) as c:
        ok = await c.generate(prompt_token_ids=list(range(5, 21)), max_new_tokens=8)  # at the limits
        assert len(ok.prompt_token_ids) == 16 and len(ok.token_ids) <= 8
        with pytest.raises(InvalidArgumentError) as info:
            await c.generate(prompt_token_ids=list(range(5, 22)), max_new_tokens=8)
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT  # the target's code, preserved
        assert "prompt_token_ids" in info.value.details and "16" in info.value.details
        with pytest.raises(InvalidArgumentError) as info:
            await c.generate(prompt_token_ids=[5, 6], max_new_tokens=9)
        assert "max_new_tokens" in info.value.details
    await _still_serving(stack)


# ---------------------------------------------------------------------------------------------
# directly on Verifier.Session

async def test_first_message_must_be_open(stack, target_channel):
    stub = target_pb2_grpc.VerifierStub(target_channel)
    await _fails(stub.Session(timeout=T), _block("0" * 32), grpc.StatusCode.FAILED_PRECONDITION, "open")
    await _fails(stub.Session(timeout=T), None, grpc.StatusCode.FAILED_PRECONDITION, "open")
    call, _ = await _open(target_channel)
    await _fails(call, _open_msg(), grpc.StatusCode.FAILED_PRECONDITION, "open")  # opened once
    await _still_serving(stack)


OPEN_CASES = {
    "empty prompt": (dict(prompt_token_ids=[]), "prompt_token_ids"),
    "id outside vocab": (dict(prompt_token_ids=[VOCAB]), "prompt_token_ids"),
    "unknown rule": (dict(acceptance="nope"), "acceptance"),
    "no max_new_tokens": (dict(max_new_tokens=0), "max_new_tokens"),
    "hidden size missing": (dict(send_hidden_states=True), "draft_hidden_size"),
    "bad top_p": (dict(acceptance="rejection",
                       sampling=common_pb2.SamplingParams(temperature=1.0, top_p=2.0)), "top_p"),
}


@pytest.mark.parametrize("case", list(OPEN_CASES))
async def test_bad_open(stack, target_channel, case):
    fields, field = OPEN_CASES[case]
    live = await _open(target_channel)
    call = target_pb2_grpc.VerifierStub(target_channel).Session(timeout=T)
    await _fails(call, _open_msg(**fields), grpc.StatusCode.INVALID_ARGUMENT, field)
    await _still_serving(stack, *live)


async def test_unknown_session_id(stack, target_channel):
    live = await _open(target_channel)
    call, session_id = await _open(target_channel)
    other = "0123456789abcdef" * 2
    assert other != session_id
    await _fails(call, _block(other), grpc.StatusCode.NOT_FOUND, "session_id")
    await _still_serving(stack, *live)


async def test_wrong_round(stack, target_channel):
    live = await _open(target_channel)
    call, session_id = await _open(target_channel)
    await call.write(_block(session_id, 0))
    assert (await call.read()).verdict.round == 0
    await _fails(call, _block(session_id, 5), grpc.StatusCode.FAILED_PRECONDITION, "round", "expected 1")
    await _still_serving(stack, *live)


@pytest.mark.parametrize("tokens", [(5, VOCAB), (-1,), (10**6, 5)])
async def test_draft_tokens_outside_vocab(stack, target_channel, tokens):
    live = await _open(target_channel)
    call, session_id = await _open(target_channel)
    await _fails(call, _block(session_id, tokens=tokens), grpc.StatusCode.INVALID_ARGUMENT, "token_ids")
    await _still_serving(stack, *live)


async def test_too_many_draft_tokens(stack, target_channel):
    live = await _open(target_channel)
    call, session_id = await _open(target_channel)
    await _fails(call, _block(session_id, tokens=[5] * 33), grpc.StatusCode.INVALID_ARGUMENT,
                 "token_ids", "32")
    await _still_serving(stack, *live)


HIDDEN_CASES = {
    "bytes do not match shape": _hidden((2, HIDDEN), nbytes=2 * HIDDEN * 2 - 1),
    "wrong shape": _hidden((2, HIDDEN // 2)),
    "wrong dtype": common_pb2.Tensor(dtype=common_pb2.DTYPE_FLOAT32, shape=[2, HIDDEN],
                                     data=bytes(2 * HIDDEN * 4)),
    "no dtype": common_pb2.Tensor(shape=[2, HIDDEN], data=bytes(2 * HIDDEN * 2)),
    "missing": None,
}


@pytest.mark.parametrize("case", list(HIDDEN_CASES))
async def test_bad_hidden_states(stack, target_channel, case):
    live = await _open(target_channel)
    call, session_id = await _open(target_channel, send_hidden_states=True, draft_hidden_size=HIDDEN)
    await call.write(_block(session_id, 0, hidden_states=_hidden((2, HIDDEN))))  # a good one first
    assert (await call.read()).verdict.round == 0
    tensor = HIDDEN_CASES[case]
    block = _block(session_id, 1) if tensor is None else _block(session_id, 1, hidden_states=tensor)
    await _fails(call, block, grpc.StatusCode.INVALID_ARGUMENT, "hidden_states")
    await _still_serving(stack, *live)


async def test_hidden_states_not_requested(stack, target_channel):
    live = await _open(target_channel)
    call, session_id = await _open(target_channel)
    await _fails(call, _block(session_id, hidden_states=_hidden((2, HIDDEN))),
                 grpc.StatusCode.INVALID_ARGUMENT, "hidden_states", "send_hidden_states")
    await _still_serving(stack, *live)


Q_CASES = {
    "too few": [0.5],
    "too many": [0.5, 0.5, 0.5],
    "missing": [],
    "above one": [0.5, 1.5],
    "zero": [0.0, 0.5],
    "negative": [-0.1, 0.5],
    "nan": [math.nan, 0.5],
}


@pytest.mark.parametrize("case", list(Q_CASES))
async def test_bad_q_probs(stack, target_channel, case):
    live = await _open(target_channel)
    sampling = common_pb2.SamplingParams(temperature=0.8, seed=7)
    call, session_id = await _open(target_channel, acceptance="rejection", sampling=sampling)
    await _fails(call, _block(session_id, tokens=(5, 6), q_probs=Q_CASES[case]),
                 grpc.StatusCode.INVALID_ARGUMENT, "q_probs")
    await _still_serving(stack, *live)


async def test_blocks_past_max_new_tokens(stack, target_channel):
    live = await _open(target_channel)
    call, session_id = await _open(target_channel, max_new_tokens=6)
    await call.write(_block(session_id, 0, tokens=(5, 6, 7)))  # commits at most 4 of 6
    verdict = (await call.read()).verdict
    committed = verdict.accepted + 1
    await _fails(call, _block(session_id, 1, tokens=[5] * (6 - committed)),
                 grpc.StatusCode.FAILED_PRECONDITION, "max_new_tokens")
    await _still_serving(stack, *live)


async def test_unexpected_correction(stack, target_channel):
    live = await _open(target_channel)
    call, session_id = await _open(target_channel)
    await _fails(call, _block(session_id, correction=5), grpc.StatusCode.FAILED_PRECONDITION, "correction")
    await _still_serving(stack, *live)


async def test_oversized_message(stack, target_channel):
    live = await _open(target_channel)
    call, session_id = await _open(target_channel)
    huge = common_pb2.Tensor(dtype=common_pb2.DTYPE_FLOAT16, shape=[1], data=bytes(17 << 20))
    await _fails(call, _block(session_id, hidden_states=huge), grpc.StatusCode.RESOURCE_EXHAUSTED)
    await _still_serving(stack, *live)


async def test_session_cap(stack_factory):
    stack = await stack_factory(target_overrides={"max_sessions": 1})
    async with grpc.aio.insecure_channel(stack.target_address) as channel:
        first, session_id = await _open(channel)
        second = target_pb2_grpc.VerifierStub(channel).Session(timeout=T)
        await _fails(second, _open_msg(), grpc.StatusCode.RESOURCE_EXHAUSTED, "session limit")
        async with AsyncClient(stack.draft_address, timeout=T, max_retries=0) as c:
            with pytest.raises(EdgespecError) as info:  # the orchestrator hits the cap too
                await c.generate("hi", max_new_tokens=4)
        assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        await first.write(_block(session_id))  # the live session is unaffected
        assert (await first.read()).verdict.round == 0
        await first.done_writing()
        assert await first.read() == grpc.aio.EOF
        await _until(lambda: len(stack.target_servicer.sessions) == 0)
        again, _ = await _open(channel)  # the freed slot is usable
        again.cancel()
    await _still_serving(stack)


# ---------------------------------------------------------------------------------------------
# directly on Drafter.Session

def _draft_open() -> draft_pb2.DrafterRequest:
    return draft_pb2.DrafterRequest(open=_open_msg().open)


def _propose(k: int) -> draft_pb2.DrafterRequest:
    return draft_pb2.DrafterRequest(propose=draft_pb2.ProposeRequest(k=k))


def _commit(token: int = 5) -> draft_pb2.DrafterRequest:
    return draft_pb2.DrafterRequest(commit=common_pb2.Verdict(round=0, accepted=0, token=token))


async def _draft_session(channel):
    call = draft_pb2_grpc.DrafterStub(channel).Session(timeout=T)
    await call.write(_draft_open())
    assert (await call.read()).WhichOneof("kind") == "opened"
    return call


async def _drafts_ok(channel) -> None:
    call = await _draft_session(channel)
    await call.write(_propose(3))
    block = (await call.read()).block
    assert len(block.token_ids) == 3 and block.round == 0
    await call.write(_commit(block.token_ids[0]))
    assert (await call.read()).committed.token_ids == [block.token_ids[0]]
    await call.done_writing()
    assert await call.read() == grpc.aio.EOF


@pytest.mark.parametrize("first", ["propose", "commit", "nothing"])
async def test_drafter_first_message_must_be_open(stack, first):
    request = {"propose": _propose(2), "commit": _commit(), "nothing": None}[first]
    async with grpc.aio.insecure_channel(stack.draft_address) as channel:
        call = draft_pb2_grpc.DrafterStub(channel).Session(timeout=T)
        await _fails(call, request, grpc.StatusCode.FAILED_PRECONDITION, "open")
        await _drafts_ok(channel)
    await _until(lambda: len(stack.draft_server.drafter.sessions) == 0)


@pytest.mark.parametrize("case", ["commit without propose", "second open", "propose twice", "k > 32"])
async def test_drafter_bad_sequence(stack, case):
    async with grpc.aio.insecure_channel(stack.draft_address) as channel:
        call = await _draft_session(channel)
        if case == "commit without propose":
            await _fails(call, _commit(), grpc.StatusCode.FAILED_PRECONDITION, "commit")
        elif case == "second open":
            await _fails(call, _draft_open(), grpc.StatusCode.FAILED_PRECONDITION, "open")
        elif case == "propose twice":
            await call.write(_propose(2))
            assert len((await call.read()).block.token_ids) == 2
            await _fails(call, _propose(2), grpc.StatusCode.FAILED_PRECONDITION, "propose")
        else:
            await _fails(call, _propose(33), grpc.StatusCode.INVALID_ARGUMENT, "k", "32")
        await _until(lambda: len(stack.draft_server.drafter.sessions) == 0)
        await _drafts_ok(channel)
    await _generates(stack.draft_address)


def _residual(values) -> common_pb2.Distribution:
    probs = np.asarray(values, dtype="<f4")
    return common_pb2.Distribution(vocab_size=VOCAB, probs=common_pb2.Tensor(
        dtype=common_pb2.DTYPE_FLOAT32, shape=[probs.size], data=probs.tobytes()))


RESIDUAL_CASES = {
    "nan": (_residual([math.nan] * VOCAB), "residual_p.probs"),
    "inf": (_residual([math.inf] * VOCAB), "residual_p.probs"),
    "all zero": (_residual([0.0] * VOCAB), "residual_p.probs"),
    "negative": (_residual([-1.0] * VOCAB), "residual_p.probs"),
    "not dense": (_residual([1.0] * 7), "residual_p.probs"),
    "wrong vocab": (common_pb2.Distribution(vocab_size=7, probs=_residual([1.0] * 7).probs), "vocab_size"),
}


@pytest.mark.parametrize("case", list(RESIDUAL_CASES))
async def test_drafter_bad_residual(stack, case):
    residual, field = RESIDUAL_CASES[case]
    sampling = common_pb2.SamplingParams(temperature=0.8, seed=3)
    opened = _open_msg(acceptance="rejection", sampling=sampling).open
    async with grpc.aio.insecure_channel(stack.draft_address) as channel:
        call = draft_pb2_grpc.DrafterStub(channel).Session(timeout=T)
        await call.write(draft_pb2.DrafterRequest(open=opened))
        await call.read()
        await call.write(_propose(2))
        assert len((await call.read()).block.token_ids) == 2
        commit = draft_pb2.DrafterRequest(commit=common_pb2.Verdict(round=0, accepted=0, residual_p=residual))
        await _fails(call, commit, grpc.StatusCode.INVALID_ARGUMENT, field)
        await _drafts_ok(channel)
    await _until(lambda: len(stack.draft_server.drafter.sessions) == 0)
