from edgespec.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerateRequest(_message.Message):
    __slots__ = ("prompt", "prompt_token_ids", "raw", "max_new_tokens", "sampling", "acceptance", "draft_length", "k", "k_max", "proactive", "early_stop", "acceptance_params", "ignore_eos")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    ACCEPTANCE_FIELD_NUMBER: _ClassVar[int]
    DRAFT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    K_MAX_FIELD_NUMBER: _ClassVar[int]
    PROACTIVE_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOP_FIELD_NUMBER: _ClassVar[int]
    ACCEPTANCE_PARAMS_FIELD_NUMBER: _ClassVar[int]
    IGNORE_EOS_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    prompt_token_ids: _containers.RepeatedScalarFieldContainer[int]
    raw: bool
    max_new_tokens: int
    sampling: _common_pb2.SamplingParams
    acceptance: str
    draft_length: str
    k: int
    k_max: int
    proactive: bool
    early_stop: str
    acceptance_params: _common_pb2.AcceptanceParams
    ignore_eos: bool
    def __init__(self, prompt: _Optional[str] = ..., prompt_token_ids: _Optional[_Iterable[int]] = ..., raw: _Optional[bool] = ..., max_new_tokens: _Optional[int] = ..., sampling: _Optional[_Union[_common_pb2.SamplingParams, _Mapping]] = ..., acceptance: _Optional[str] = ..., draft_length: _Optional[str] = ..., k: _Optional[int] = ..., k_max: _Optional[int] = ..., proactive: _Optional[bool] = ..., early_stop: _Optional[str] = ..., acceptance_params: _Optional[_Union[_common_pb2.AcceptanceParams, _Mapping]] = ..., ignore_eos: _Optional[bool] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("chunk", "final")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    chunk: Chunk
    final: Final
    def __init__(self, chunk: _Optional[_Union[Chunk, _Mapping]] = ..., final: _Optional[_Union[Final, _Mapping]] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("token_ids", "text", "relaxed_accepted")
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    RELAXED_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    text: str
    relaxed_accepted: int
    def __init__(self, token_ids: _Optional[_Iterable[int]] = ..., text: _Optional[str] = ..., relaxed_accepted: _Optional[int] = ...) -> None: ...

class Final(_message.Message):
    __slots__ = ("text", "token_ids", "prompt_token_ids", "finish_reason", "acceptance", "lossless", "stats")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    ACCEPTANCE_FIELD_NUMBER: _ClassVar[int]
    LOSSLESS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    text: str
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    prompt_token_ids: _containers.RepeatedScalarFieldContainer[int]
    finish_reason: str
    acceptance: str
    lossless: bool
    stats: GenerationStats
    def __init__(self, text: _Optional[str] = ..., token_ids: _Optional[_Iterable[int]] = ..., prompt_token_ids: _Optional[_Iterable[int]] = ..., finish_reason: _Optional[str] = ..., acceptance: _Optional[str] = ..., lossless: _Optional[bool] = ..., stats: _Optional[_Union[GenerationStats, _Mapping]] = ...) -> None: ...

class Percentiles(_message.Message):
    __slots__ = ("p50", "p90", "p99", "mean")
    P50_FIELD_NUMBER: _ClassVar[int]
    P90_FIELD_NUMBER: _ClassVar[int]
    P99_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    p50: float
    p90: float
    p99: float
    mean: float
    def __init__(self, p50: _Optional[float] = ..., p90: _Optional[float] = ..., p99: _Optional[float] = ..., mean: _Optional[float] = ...) -> None: ...

class GenerationStats(_message.Message):
    __slots__ = ("rounds", "drafted_tokens", "accepted_tokens", "mean_accepted_length", "acceptance_rate", "per_position_accepted", "target_forward_passes", "tokens_per_second", "bytes_up", "bytes_down", "draft_ms", "verify_ms", "round_trip_ms", "total_ms", "generated_tokens", "ttft_ms", "server_tokens", "mode_switches", "predrafted_tokens", "relaxed_accepted", "resumes")
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    DRAFTED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MEAN_ACCEPTED_LENGTH_FIELD_NUMBER: _ClassVar[int]
    ACCEPTANCE_RATE_FIELD_NUMBER: _ClassVar[int]
    PER_POSITION_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    TARGET_FORWARD_PASSES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    BYTES_UP_FIELD_NUMBER: _ClassVar[int]
    BYTES_DOWN_FIELD_NUMBER: _ClassVar[int]
    DRAFT_MS_FIELD_NUMBER: _ClassVar[int]
    VERIFY_MS_FIELD_NUMBER: _ClassVar[int]
    ROUND_TRIP_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TTFT_MS_FIELD_NUMBER: _ClassVar[int]
    SERVER_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MODE_SWITCHES_FIELD_NUMBER: _ClassVar[int]
    PREDRAFTED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    RELAXED_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    RESUMES_FIELD_NUMBER: _ClassVar[int]
    rounds: int
    drafted_tokens: int
    accepted_tokens: int
    mean_accepted_length: float
    acceptance_rate: float
    per_position_accepted: _containers.RepeatedScalarFieldContainer[int]
    target_forward_passes: int
    tokens_per_second: float
    bytes_up: int
    bytes_down: int
    draft_ms: Percentiles
    verify_ms: Percentiles
    round_trip_ms: Percentiles
    total_ms: float
    generated_tokens: int
    ttft_ms: float
    server_tokens: int
    mode_switches: int
    predrafted_tokens: int
    relaxed_accepted: int
    resumes: int
    def __init__(self, rounds: _Optional[int] = ..., drafted_tokens: _Optional[int] = ..., accepted_tokens: _Optional[int] = ..., mean_accepted_length: _Optional[float] = ..., acceptance_rate: _Optional[float] = ..., per_position_accepted: _Optional[_Iterable[int]] = ..., target_forward_passes: _Optional[int] = ..., tokens_per_second: _Optional[float] = ..., bytes_up: _Optional[int] = ..., bytes_down: _Optional[int] = ..., draft_ms: _Optional[_Union[Percentiles, _Mapping]] = ..., verify_ms: _Optional[_Union[Percentiles, _Mapping]] = ..., round_trip_ms: _Optional[_Union[Percentiles, _Mapping]] = ..., total_ms: _Optional[float] = ..., generated_tokens: _Optional[int] = ..., ttft_ms: _Optional[float] = ..., server_tokens: _Optional[int] = ..., mode_switches: _Optional[int] = ..., predrafted_tokens: _Optional[int] = ..., relaxed_accepted: _Optional[int] = ..., resumes: _Optional[int] = ...) -> None: ...
