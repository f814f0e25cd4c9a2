"""The fuzz cases of `edgespec bench fuzz` and tests/services/test_fuzz.py, as hypothesis
strategies: which RPC a case calls (`RPCS`), and the request messages it sends, in four families —
`bytes` (random, truncated or bit-flipped payloads), `extremes` (a valid request with fields forced
to their extremes on the wire: NaN/inf floats, +-2^31 / 2^64 ints, out-of-vocab ids, wrong tensor
dtypes/shapes/byte lengths, huge repeated fields and strings, unknown fields), `order` (protocol
order violations: block before open, second open, skipped/repeated rounds, unprompted hidden
uploads, blocks naming another live session, 0 or 2 messages to a unary method) and `oversize`
(just over the message-size limit, or just under it with a huge repeated field).
Field values are written as raw wire bytes appended to a valid message (protobuf merges them), so
any value reaches the server, also ones the Python protobuf API refuses to set. Pure data: it
sends nothing (`fuzz_run.py` does) and knows no status codes.
"""

from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from hypothesis import strategies as st

from edgespec.rpc.server import MAX_MESSAGE_BYTES as MESSAGE_LIMIT  # the servers' default --max-message-bytes
from edgespec.suites.fuzz_wire import Case, Field, RawBytes, Send, varint
from edgespec.v1 import common_pb2, draft_pb2, orchestrator_pb2, target_pb2

PROMPT = (76, 73, 80, 80)           # "hell" in the tiny tokenizer
RULES = ("exact", "rejection", "fly", "dropmatch", "semantic", "", "nope")
POLICIES = ("fixed", "heuristic", "adaedl", "svip", "auto", "server", "", "nope")
INTS = (0, 1, -1, 2, 31, 32, 33, 64, 65, 255, 1024, 4096, 4097, 2**31 - 1, -2**31, 2**31, 2**32 - 1, 2**32,
        2**63 - 1, -2**63, 2**64 - 1)
FLOATS = (math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-45, 1e-38, 0.5, 1.0, 1.0000001, 2.0, -1.0, 3.4028235e38)
WIRE_ODDITIES = (b"\xff" * 11, b"\x08" + b"\xff" * 10, b"\x08", b"\x0a\x80\x80\x80\x80\x10", b"\x00",
                 b"\x0f", b"\x12\x05ab", b"\xfa\xff\xff\xff\x0f\x00", b"\x0b\x0c", b"\x13\x14")


@dataclass(frozen=True)
class Rpc:
    """A method of one of the three servers; every case calls it as a raw bidi stream."""

    name: str
    server: str        # "target", "draft" (Drafter + embedded orchestrator) or "orchestrator"
    path: str
    request: type
    response: type


RPCS: tuple[Rpc, ...] = (
    Rpc("Verifier.Session", "target", "/edgespec.v1.Verifier/Session", target_pb2.VerifierRequest,
        target_pb2.VerifierResponse),
    Rpc("Verifier.Info", "target", "/edgespec.v1.Verifier/Info", common_pb2.InfoRequest, common_pb2.ModelInfo),
    Rpc("Drafter.Session", "draft", "/edgespec.v1.Drafter/Session", draft_pb2.DrafterRequest,
        draft_pb2.DrafterResponse),
    Rpc("Drafter.Info", "draft", "/edgespec.v1.Drafter/Info", common_pb2.InfoRequest, common_pb2.ModelInfo),
    Rpc("Generate (embedded)", "draft", "/edgespec.v1.Orchestrator/Generate", orchestrator_pb2.GenerateRequest,
        orchestrator_pb2.GenerateResponse),
    Rpc("Generate (standalone)", "orchestrator", "/edgespec.v1.Orchestrator/Generate",
        orchestrator_pb2.GenerateRequest, orchestrator_pb2.GenerateResponse),
    *(Rpc(f"Health.Check ({server})", server, "/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest,
          health_pb2.HealthCheckResponse) for server in ("target", "draft", "orchestrator")),
    Rpc("Reflection (target)", "target", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        reflection_pb2.ServerReflectionRequest, reflection_pb2.ServerReflectionResponse),
)
BY_NAME = {rpc.name: rpc for rpc in RPCS}
RPC_WEIGHTS = {"Verifier.Session": 5, "Drafter.Session": 4, "Generate (embedded)": 3, "Generate (standalone)": 2}
_WEIGHTED_RPCS = tuple(rpc for rpc in RPCS for _ in range(RPC_WEIGHTS.get(rpc.name, 1)))


# ---------------------------------------------------------------------------------------------
# valid messages the other families start from

def _open(acceptance: str = "exact", temperature: float = 0.0, **fields) -> common_pb2.SessionOpen:
    return common_pb2.SessionOpen(prompt_token_ids=PROMPT, acceptance=acceptance, max_new_tokens=16,
                                  sampling=common_pb2.SamplingParams(temperature=temperature, seed=1), **fields)


def _block(round_: int = 0, tokens=(5, 6), **fields) -> target_pb2.VerifierRequest:
    return target_pb2.VerifierRequest(block=common_pb2.DraftBlock(round=round_, token_ids=list(tokens), **fields))


@st.composite
def _base(draw, rpc: Rpc) -> list[Send]:
    """A valid exchange on `rpc` (the Verifier's block carries this stream's own session id)."""
    rule = draw(st.sampled_from(RULES[:5]))
    temperature = 0.0 if rule == "exact" else 0.8
    if rpc.request is target_pb2.VerifierRequest:
        block = {} if temperature == 0 else {"q_probs": [0.5, 0.5]}
        return [Send(target_pb2.VerifierRequest(open=_open(rule, temperature))),
                Send(_block(**block), session="own")]
    if rpc.request is draft_pb2.DrafterRequest:
        return [Send(draft_pb2.DrafterRequest(open=_open(rule, temperature))),
                Send(draft_pb2.DrafterRequest(propose=draft_pb2.ProposeRequest(k=2))),
                Send(draft_pb2.DrafterRequest(commit=common_pb2.Verdict(round=0, accepted=0, token=5))),
                Send(draft_pb2.DrafterRequest(propose=draft_pb2.ProposeRequest(k=2)))]
    if rpc.request is orchestrator_pb2.GenerateRequest:
        return [Send(orchestrator_pb2.GenerateRequest(
            prompt_token_ids=PROMPT, max_new_tokens=8, k=2, acceptance=rule if temperature else "",
            draft_length=draw(st.sampled_from(POLICIES[:6])),
            sampling=common_pb2.SamplingParams(temperature=temperature, top_p=0.9, seed=3)))]
    if rpc.request is health_pb2.HealthCheckRequest:
        return [Send(health_pb2.HealthCheckRequest(service=draw(st.sampled_from(("", "edgespec.v1.Verifier", "x")))))]
    if rpc.request is reflection_pb2.ServerReflectionRequest:
        return [Send(reflection_pb2.ServerReflectionRequest(list_services=""))]
    return [Send(rpc.request())]


# ---------------------------------------------------------------------------------------------
# `extremes`: any field of the request type at an extreme value

@functools.cache
def leaf_paths(descriptor: Descriptor, depth: int = 5) -> tuple[tuple[FieldDescriptor, ...], ...]:
    """Every field reachable from `descriptor` (message fields and their fields), as paths."""
    paths: list[tuple[FieldDescriptor, ...]] = []
    for field in descriptor.fields:
        paths.append((field,))
        if field.type == FieldDescriptor.TYPE_MESSAGE and depth > 1:
            paths += [(field, *rest) for rest in leaf_paths(field.message_type, depth - 1)]
    return tuple(paths)


def _ints(vocab: int):
    return st.one_of(st.sampled_from((*INTS, vocab - 1, vocab, vocab + 1)), st.integers(-2**63, 2**64 - 1))


_FLOAT_BYTES = st.one_of(st.sampled_from(FLOATS).map(lambda v: struct.pack("<f", v)),
                         st.floats(width=32).map(lambda v: struct.pack("<f", v)),
                         st.binary(min_size=4, max_size=4))
_STRINGS = st.one_of(st.sampled_from((*RULES, *POLICIES, "naive", "js", "full", "mismatch-first", "adaedl",
                                      "svip", "none")).map(str.encode),
                     st.text(max_size=40).map(str.encode), st.binary(max_size=40))


@st.composite
def tensor_bytes(draw, vocab: int = 320) -> bytes:
    """A serialized Tensor with any dtype, shape and data length (right, off by a little, or wrong)."""
    dtype = draw(st.one_of(st.integers(0, 4), _ints(vocab)))
    shape = draw(st.lists(st.one_of(st.integers(0, 66), st.sampled_from((2**31, 2**32 - 1, 2**32))), max_size=9))
    size = math.prod(shape) * {1: 2, 2: 4, 3: 4}.get(dtype, 4)
    length = draw(st.sampled_from((size, size, size - 1, size + 1, size - 2, 0, 3)))
    data = bytes(max(0, min(length, 1 << 20)))
    packed = b"".join(varint(n) for n in shape)
    return (varint(1 << 3) + varint(dtype) + varint(2 << 3 | 2) + varint(len(packed)) + packed
            + varint(3 << 3 | 2) + varint(len(data)) + data)


@st.composite
def extreme_field(draw, descriptor: Descriptor, vocab: int = 320) -> Field:
    """One field of `descriptor` (any depth), at an extreme value, or a huge repeat of one."""
    path = draw(st.sampled_from(leaf_paths(descriptor)))
    leaf, numbers = path[-1], tuple(f.number for f in path)
    name = ".".join(f.name for f in path)
    if leaf.type == FieldDescriptor.TYPE_FLOAT:
        wire, body = 5, draw(_FLOAT_BYTES)
    elif leaf.type == FieldDescriptor.TYPE_DOUBLE:
        wire, body = 1, draw(st.binary(min_size=8, max_size=8))
    elif leaf.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        wire, body = 2, draw(_STRINGS)
    elif leaf.type == FieldDescriptor.TYPE_MESSAGE:
        tensor = leaf.message_type is common_pb2.Tensor.DESCRIPTOR
        wire, body = 2, draw(tensor_bytes(vocab) if tensor else st.binary(max_size=64))
    else:
        wire, body = 0, varint(draw(_ints(vocab)))
    repeat = 1
    if leaf.is_repeated or leaf.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        repeat = draw(st.sampled_from((1, 1, 1, 2, 33, 65, 1025, 4097, 100_000)))
    return Field(name, numbers, wire, body, repeat)


def _unknown_field():
    return st.builds(lambda number, wire, body: Field(f"unknown#{number}", (number,), wire, body),
                     st.integers(1, 2**29 - 1), st.sampled_from((0, 2)), st.binary(min_size=1, max_size=8)
                     .map(lambda b: b if b[-1] < 0x80 else b[:-1] + b"\x01"))


@st.composite
def extremes_case(draw, vocab: int = 320) -> Case:
    rpc = draw(st.sampled_from(_WEIGHTED_RPCS))
    sends = draw(_base(rpc))
    at = draw(st.integers(0, len(sends) - 1))
    descriptor = rpc.request.DESCRIPTOR
    field = st.one_of(extreme_field(descriptor, vocab), _unknown_field()) if descriptor.fields else _unknown_field()
    fields = draw(st.lists(field, min_size=1, max_size=3))
    sends[at] = Send(sends[at].message, tuple(fields), sends[at].session)
    return Case("extremes", rpc.name, tuple(sends), wait_opened=rpc.request is target_pb2.VerifierRequest)


# ---------------------------------------------------------------------------------------------
# `bytes`: random, truncated or bit-flipped payloads

@st.composite
def bytes_case(draw, vocab: int = 320) -> Case:
    rpc = draw(st.sampled_from(_WEIGHTED_RPCS))
    how = draw(st.sampled_from(("random", "oddity", "cut", "flip")))
    if how in ("random", "oddity"):
        junk = st.binary(max_size=512) if how == "random" else st.sampled_from(WIRE_ODDITIES)
        payloads = draw(st.lists(junk, min_size=1, max_size=3))
        return Case("bytes", rpc.name, tuple(_raw(p) for p in payloads))
    sends = draw(_base(rpc))
    at = draw(st.integers(0, len(sends) - 1))
    if how == "cut":
        sends[at] = Send(sends[at].message, session=sends[at].session, cut=draw(st.integers(1, 64)))
    else:
        sends[at] = Send(sends[at].message, session=sends[at].session,
                         flips=tuple(draw(st.lists(st.integers(0, 4095), min_size=1, max_size=4))))
    return Case("bytes", rpc.name, tuple(sends), wait_opened=rpc.request is target_pb2.VerifierRequest and at > 0)


def _raw(payload: bytes) -> Send:
    """A message that is exactly `payload` (a top-level pseudo-field with an empty path)."""
    return Send(None, (RawBytes(payload),))


# ---------------------------------------------------------------------------------------------
# `order`: valid messages in an order the protocol forbids

def _ids(vocab: int):
    return st.lists(st.integers(0, vocab - 1), max_size=4)


@st.composite
def _verifier_step(draw, vocab: int) -> Send:
    kind = draw(st.sampled_from(("open", "block", "block", "block", "hidden")))
    round_ = draw(st.integers(0, 3))
    if kind == "open":
        rule = draw(st.sampled_from(RULES[:5]))
        return Send(target_pb2.VerifierRequest(open=_open(rule, 0.0 if rule == "exact" else 0.8,
                                                          send_hidden_states=rule == "semantic",
                                                          draft_hidden_size=64 if rule == "semantic" else 0)))
    if kind == "hidden":
        rows = draw(st.integers(0, 3))
        tensor = common_pb2.Tensor(dtype=common_pb2.DTYPE_FLOAT16, shape=[rows, 64], data=bytes(rows * 64 * 2))
        return Send(target_pb2.VerifierRequest(hidden=target_pb2.HiddenUpload(round=round_, hidden_states=tensor)))
    tokens = draw(_ids(vocab))
    extra = {}
    if draw(st.booleans()):
        extra["q_probs"] = [0.5] * len(tokens)
    if draw(st.integers(0, 4)) == 0:
        extra["correction"] = draw(st.integers(0, vocab - 1))
    if draw(st.integers(0, 4)) == 0:
        extra["server_tokens"] = draw(st.sampled_from((1, 3, 4096)))
        tokens = []
    session = draw(st.sampled_from(("own", "own", "own", "victim", "")))
    return Send(_block(round_, tokens, **extra), session=session)


@st.composite
def _drafter_step(draw, vocab: int) -> Send:
    kind = draw(st.sampled_from(("open", "propose", "propose", "commit", "commit")))
    if kind == "open":
        rule = draw(st.sampled_from(RULES[:5]))
        return Send(draft_pb2.DrafterRequest(open=_open(rule, 0.0 if rule == "exact" else 0.8)))
    if kind == "propose":
        stop = {"stop_entropy": draw(st.sampled_from((0.0, 1.0)))} if draw(st.booleans()) else {}
        return Send(draft_pb2.DrafterRequest(propose=draft_pb2.ProposeRequest(
            k=draw(st.integers(0, 5)), ahead=draw(st.integers(0, 3)), **stop)))
    verdict = common_pb2.Verdict(round=draw(st.integers(0, 3)), accepted=draw(st.integers(0, 6)))
    if draw(st.integers(0, 3)) == 0:
        probs = common_pb2.Tensor(dtype=common_pb2.DTYPE_FLOAT32, shape=[vocab],
                                  data=struct.pack(f"<{vocab}f", *[1 / vocab] * vocab))
        verdict.residual_p.CopyFrom(common_pb2.Distribution(vocab_size=vocab, probs=probs))
    else:
        verdict.token = draw(st.integers(0, vocab - 1))
    return Send(draft_pb2.DrafterRequest(commit=verdict))


@st.composite
def order_case(draw, vocab: int = 320) -> Case:
    rpc = draw(st.sampled_from(_WEIGHTED_RPCS))
    if rpc.request is target_pb2.VerifierRequest:
        sends = draw(st.lists(_verifier_step(vocab), min_size=1, max_size=6))
        opens = sends[0].message is not None and sends[0].message.WhichOneof("kind") == "open"
        return Case("order", rpc.name, tuple(sends), wait_opened=opens)
    if rpc.request is draft_pb2.DrafterRequest:
        return Case("order", rpc.name, tuple(draw(st.lists(_drafter_step(vocab), min_size=1, max_size=6))))
    base = draw(_base(rpc))[0]
    return Case("order", rpc.name, (base,) * draw(st.sampled_from((0, 2, 3))))


# ---------------------------------------------------------------------------------------------
# `oversize`: messages just over the size limit, or just under it with one huge field

HUGE_FIELDS = {  # request type -> (field name, path) of a repeated / string field to blow up
    target_pb2.VerifierRequest: ("open.prompt_token_ids", (1, 1)),
    draft_pb2.DrafterRequest: ("open.prompt_token_ids", (1, 1)),
    orchestrator_pb2.GenerateRequest: ("prompt_token_ids", (2,)),
    health_pb2.HealthCheckRequest: ("service", (1,)),
}


@st.composite
def oversize_case(draw, vocab: int = 320) -> Case:
    rpc = draw(st.sampled_from(_WEIGHTED_RPCS))
    name, path = HUGE_FIELDS.get(rpc.request, ("unknown#99", (99,)))
    if rpc.request is orchestrator_pb2.GenerateRequest and draw(st.booleans()):
        name, path = "prompt", (1,)
    size = draw(st.sampled_from((MESSAGE_LIMIT + 1, MESSAGE_LIMIT + 4096, MESSAGE_LIMIT - 4096, 1 << 20)))
    unit = b"a" if name in ("prompt", "service") or name.startswith("unknown") else b"\x07"
    return Case("oversize", rpc.name, (Send(None, (Field(name, path, 2, unit, repeat=size),)),))


FAMILIES = {"bytes": (bytes_case, 25), "extremes": (extremes_case, 35), "order": (order_case, 38),
            "oversize": (oversize_case, 2)}


def cases(vocab: int = 320):
    """Any fuzz case, families drawn by their weights (`FAMILIES`)."""
    weighted = [name for name, (_, weight) in FAMILIES.items() for _ in range(weight)]
    return st.sampled_from(weighted).flatmap(lambda name: FAMILIES[name][0](vocab))
