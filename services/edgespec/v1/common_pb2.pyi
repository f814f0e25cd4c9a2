from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DTYPE_UNSPECIFIED: _ClassVar[DType]
    DTYPE_FLOAT16: _ClassVar[DType]
    DTYPE_FLOAT32: _ClassVar[DType]
    DTYPE_INT32: _ClassVar[DType]
DTYPE_UNSPECIFIED: DType
DTYPE_FLOAT16: DType
DTYPE_FLOAT32: DType
DTYPE_INT32: DType

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: DType
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[_Union[DType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class SamplingParams(_message.Message):
    __slots__ = ("temperature", "top_k", "top_p", "seed")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_k: int
    top_p: float
    seed: int
    def __init__(self, temperature: _Optional[float] = ..., top_k: _Optional[int] = ..., top_p: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class Distribution(_message.Message):
    __slots__ = ("vocab_size", "indices", "probs")
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    INDICES_FIELD_NUMBER: _ClassVar[int]
    PROBS_FIELD_NUMBER: _ClassVar[int]
    vocab_size: int
    indices: Tensor
    probs: Tensor
    def __init__(self, vocab_size: _Optional[int] = ..., indices: _Optional[_Union[Tensor, _Mapping]] = ..., probs: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class AcceptanceParams(_message.Message):
    __slots__ = ("dropout_paths", "dropout_p", "dropout_criterion", "draft_top_k", "entropy_threshold", "window", "semantic_threshold", "semantic_threshold_min", "semantic_ref_ms", "semantic_upload")
    DROPOUT_PATHS_FIELD_NUMBER: _ClassVar[int]
    DROPOUT_P_FIELD_NUMBER: _ClassVar[int]
    DROPOUT_CRITERION_FIELD_NUMBER: _ClassVar[int]
    DRAFT_TOP_K_FIELD_NUMBER: _ClassVar[int]
    ENTROPY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_THRESHOLD_MIN_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_REF_MS_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_UPLOAD_FIELD_NUMBER: _ClassVar[int]
    dropout_paths: int
    dropout_p: float
    dropout_criterion: str
    draft_top_k: int
    entropy_threshold: float
    window: int
    semantic_threshold: float
    semantic_threshold_min: float
    semantic_ref_ms: float
    semantic_upload: str
    def __init__(self, dropout_paths: _Optional[int] = ..., dropout_p: _Optional[float] = ..., dropout_criterion: _Optional[str] = ..., draft_top_k: _Optional[int] = ..., entropy_threshold: _Optional[float] = ..., window: _Optional[int] = ..., semantic_threshold: _Optional[float] = ..., semantic_threshold_min: _Optional[float] = ..., semantic_ref_ms: _Optional[float] = ..., semantic_upload: _Optional[str] = ...) -> None: ...

class TopProbs(_message.Message):
    __slots__ = ("indices", "probs")
    INDICES_FIELD_NUMBER: _ClassVar[int]
    PROBS_FIELD_NUMBER: _ClassVar[int]
    indices: Tensor
    probs: Tensor
    def __init__(self, indices: _Optional[_Union[Tensor, _Mapping]] = ..., probs: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class SessionCounters(_message.Message):
    __slots__ = ("forward_passes", "rounds")
    FORWARD_PASSES_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    forward_passes: int
    rounds: int
    def __init__(self, forward_passes: _Optional[int] = ..., rounds: _Optional[int] = ...) -> None: ...

class SessionOpen(_message.Message):
    __slots__ = ("prompt_token_ids", "sampling", "acceptance", "max_new_tokens", "send_hidden_states", "draft_hidden_size", "acceptance_params")
    PROMPT_TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    ACCEPTANCE_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SEND_HIDDEN_STATES_FIELD_NUMBER: _ClassVar[int]
    DRAFT_HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTANCE_PARAMS_FIELD_NUMBER: _ClassVar[int]
    prompt_token_ids: _containers.RepeatedScalarFieldContainer[int]
    sampling: SamplingParams
    acceptance: str
    max_new_tokens: int
    send_hidden_states: bool
    draft_hidden_size: int
    acceptance_params: AcceptanceParams
    def __init__(self, prompt_token_ids: _Optional[_Iterable[int]] = ..., sampling: _Optional[_Union[SamplingParams, _Mapping]] = ..., acceptance: _Optional[str] = ..., max_new_tokens: _Optional[int] = ..., send_hidden_states: _Optional[bool] = ..., draft_hidden_size: _Optional[int] = ..., acceptance_params: _Optional[_Union[AcceptanceParams, _Mapping]] = ...) -> None: ...

class SessionOpened(_message.Message):
    __slots__ = ("session_id", "prefill_ms", "counters", "vocab_size")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PREFILL_MS_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    prefill_ms: float
    counters: SessionCounters
    vocab_size: int
    def __init__(self, session_id: _Optional[str] = ..., prefill_ms: _Optional[float] = ..., counters: _Optional[_Union[SessionCounters, _Mapping]] = ..., vocab_size: _Optional[int] = ...) -> None: ...

class DraftBlock(_message.Message):
    __slots__ = ("session_id", "round", "token_ids", "q_probs", "entropies", "hidden_states", "correction", "draft_ms", "server_tokens", "predrafted", "top_q", "rtt_ms", "uplink_bps", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    Q_PROBS_FIELD_NUMBER: _ClassVar[int]
    ENTROPIES_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_STATES_FIELD_NUMBER: _ClassVar[int]
    CORRECTION_FIELD_NUMBER: _ClassVar[int]
    DRAFT_MS_FIELD_NUMBER: _ClassVar[int]
    SERVER_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PREDRAFTED_FIELD_NUMBER: _ClassVar[int]
    TOP_Q_FIELD_NUMBER: _ClassVar[int]
    RTT_MS_FIELD_NUMBER: _ClassVar[int]
    UPLINK_BPS_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    round: int
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    q_probs: _containers.RepeatedScalarFieldContainer[float]
    entropies: _containers.RepeatedScalarFieldContainer[float]
    hidden_states: Tensor
    correction: int
    draft_ms: float
    server_tokens: int
    predrafted: int
    top_q: TopProbs
    rtt_ms: float
    uplink_bps: float
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, session_id: _Optional[str] = ..., round: _Optional[int] = ..., token_ids: _Optional[_Iterable[int]] = ..., q_probs: _Optional[_Iterable[float]] = ..., entropies: _Optional[_Iterable[float]] = ..., hidden_states: _Optional[_Union[Tensor, _Mapping]] = ..., correction: _Optional[int] = ..., draft_ms: _Optional[float] = ..., server_tokens: _Optional[int] = ..., predrafted: _Optional[int] = ..., top_q: _Optional[_Union[TopProbs, _Mapping]] = ..., rtt_ms: _Optional[float] = ..., uplink_bps: _Optional[float] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Verdict(_message.Message):
    __slots__ = ("round", "accepted", "token", "residual_p", "verify_ms", "counters", "draining", "relaxed_accepted", "queue_ms")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    RESIDUAL_P_FIELD_NUMBER: _ClassVar[int]
    VERIFY_MS_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    RELAXED_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    round: int
    accepted: int
    token: int
    residual_p: Distribution
    verify_ms: float
    counters: SessionCounters
    draining: bool
    relaxed_accepted: int
    queue_ms: float
    def __init__(self, round: _Optional[int] = ..., accepted: _Optional[int] = ..., token: _Optional[int] = ..., residual_p: _Optional[_Union[Distribution, _Mapping]] = ..., verify_ms: _Optional[float] = ..., counters: _Optional[_Union[SessionCounters, _Mapping]] = ..., draining: _Optional[bool] = ..., relaxed_accepted: _Optional[int] = ..., queue_ms: _Optional[float] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model", "vocab_size", "hidden_size", "max_prompt_tokens", "max_new_tokens", "max_draft_tokens", "acceptance_rules", "live_sessions", "max_sessions")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_DRAFT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTANCE_RULES_FIELD_NUMBER: _ClassVar[int]
    LIVE_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    model: str
    vocab_size: int
    hidden_size: int
    max_prompt_tokens: int
    max_new_tokens: int
    max_draft_tokens: int
    acceptance_rules: _containers.RepeatedScalarFieldContainer[str]
    live_sessions: int
    max_sessions: int
    def __init__(self, model: _Optional[str] = ..., vocab_size: _Optional[int] = ..., hidden_size: _Optional[int] = ..., max_prompt_tokens: _Optional[int] = ..., max_new_tokens: _Optional[int] = ..., max_draft_tokens: _Optional[int] = ..., acceptance_rules: _Optional[_Iterable[str]] = ..., live_sessions: _Optional[int] = ..., max_sessions: _Optional[int] = ...) -> None: ...
