"""Conversion between the edgespec.v1 wire messages and the SDK types.

Builds `GenerateRequest`s from keyword arguments and turns `GenerateResponse`s into `Chunk` /
`GenerationResult`. The only module (besides the clients' stubs) touching protobuf messages;
it does NOT do any I/O, retries or error mapping of RPC status codes.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from edgespec.v1 import common_pb2, orchestrator_pb2

from .errors import InvalidArgumentError, ProtocolError
from .types import Chunk, GenerationResult, GenerationStats, Percentiles


_SAMPLING = common_pb2.SamplingParams.DESCRIPTOR.fields_by_name
_REQUEST = {name: field for name, field in orchestrator_pb2.GenerateRequest.DESCRIPTOR.fields_by_name.items()
            if name not in ("prompt", "sampling")}
OPTIONS = {**_REQUEST, **_SAMPLING}  # option name -> its wire field: the keys of `GenerateOptions`
_UNSIGNED = (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64)


def build_request(prompt: str = "", **options: Any) -> orchestrator_pb2.GenerateRequest:
    """A GenerateRequest from `GenerateOptions`: each option is the wire field of that name (the
    sampling ones inside `sampling`); None or an omitted option leaves the field unset, so the
    server's default applies.

    Raises TypeError for an unknown option and InvalidArgumentError when a value does not fit its
    wire type (e.g. a negative k).
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"unknown generate option(s) {', '.join(unknown)}; known: {', '.join(sorted(OPTIONS))}")
    given = {name: value for name, value in options.items() if value is not None}
    for name, value in given.items():
        if OPTIONS[name].type in _UNSIGNED and isinstance(value, int) and value < 0:
            raise InvalidArgumentError(grpc.StatusCode.INVALID_ARGUMENT, f"{name}: must be >= 0, got {value}")
    if "acceptance_params" in given:
        given["acceptance_params"] = acceptance_params_pb(given["acceptance_params"])
    try:
        sampling = common_pb2.SamplingParams(**{n: v for n, v in given.items() if n in _SAMPLING})
        return orchestrator_pb2.GenerateRequest(prompt=prompt, sampling=sampling,
                                                **{n: v for n, v in given.items() if n in _REQUEST})
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(grpc.StatusCode.INVALID_ARGUMENT, f"bad request field: {e}") from e


def acceptance_params_pb(params: Mapping[str, Any]) -> common_pb2.AcceptanceParams:
    """The lossy rules' parameters by wire name; an unknown name is an InvalidArgumentError."""
    known = set(common_pb2.AcceptanceParams.DESCRIPTOR.fields_by_name)
    unknown = sorted(set(params) - known)
    if unknown:
        raise InvalidArgumentError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"acceptance_params: unknown parameter(s) {', '.join(unknown)}; "
                                   f"known: {', '.join(sorted(known))}")
    return common_pb2.AcceptanceParams(**{k: v for k, v in params.items() if v is not None})


def f32(value: float) -> float:
    """The shortest decimal that reads back as the same float32 (0.800000011920929 -> 0.8)."""
    packed = struct.pack("<f", value)
    for digits in range(6, 10):
        shortest = float(f"{value:.{digits}g}")
        if struct.pack("<f", shortest) == packed:
            return shortest
    return value


def percentiles_from_pb(pb: orchestrator_pb2.Percentiles) -> Percentiles:
    """Percentiles from their wire message."""
    return Percentiles(p50=f32(pb.p50), p90=f32(pb.p90), p99=f32(pb.p99), mean=f32(pb.mean))


def stats_from_pb(pb: orchestrator_pb2.GenerationStats) -> GenerationStats:
    """GenerationStats from its wire message (all zeros when the server left it unset)."""
    return GenerationStats(
        rounds=pb.rounds,
        drafted_tokens=pb.drafted_tokens,
        accepted_tokens=pb.accepted_tokens,
        mean_accepted_length=f32(pb.mean_accepted_length),
        acceptance_rate=f32(pb.acceptance_rate),
        per_position_accepted=tuple(pb.per_position_accepted),
        target_forward_passes=pb.target_forward_passes,
        tokens_per_second=f32(pb.tokens_per_second),
        bytes_up=pb.bytes_up,
        bytes_down=pb.bytes_down,
        generated_tokens=pb.generated_tokens,
        total_ms=f32(pb.total_ms),
        ttft_ms=f32(pb.ttft_ms),
        server_tokens=pb.server_tokens,
        mode_switches=pb.mode_switches,
        predrafted_tokens=pb.predrafted_tokens,
        relaxed_accepted=pb.relaxed_accepted,
        resumes=pb.resumes,
        draft_ms=percentiles_from_pb(pb.draft_ms),
        verify_ms=percentiles_from_pb(pb.verify_ms),
        round_trip_ms=percentiles_from_pb(pb.round_trip_ms),
    )


def chunk_from_pb(pb: orchestrator_pb2.Chunk) -> Chunk:
    """A Chunk from its wire message."""
    return Chunk(token_ids=tuple(pb.token_ids), text=pb.text, relaxed_accepted=pb.relaxed_accepted)


def result_from_pb(pb: orchestrator_pb2.Final) -> GenerationResult:
    """A GenerationResult from the stream's final message."""
    return GenerationResult(
        text=pb.text,
        token_ids=tuple(pb.token_ids),
        prompt_token_ids=tuple(pb.prompt_token_ids),
        finish_reason=pb.finish_reason,
        acceptance=pb.acceptance,
        lossless=pb.lossless,
        stats=stats_from_pb(pb.stats),
    )


def event_from_pb(pb: orchestrator_pb2.GenerateResponse) -> Chunk | GenerationResult:
    """The Chunk or (for the final message) GenerationResult a response carries."""
    kind = pb.WhichOneof("kind")
    if kind == "chunk":
        return chunk_from_pb(pb.chunk)
    if kind == "final":
        return result_from_pb(pb.final)
    raise ProtocolError("GenerateResponse carries neither `chunk` nor `final`")


def missing_final(chunks: int) -> ProtocolError:
    """The error for a Generate stream that ended without its final message."""
    return ProtocolError(
        f"Generate stream ended without a final message after {chunks} chunk(s); "
        "the server closed the stream early"
    )
