from edgespec.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VerifierRequest(_message.Message):
    __slots__ = ("open", "block", "hidden")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    open: SessionOpen
    block: DraftBlock
    hidden: HiddenUpload
    def __init__(self, open: _Optional[_Union[SessionOpen, _Mapping]] = ..., block: _Optional[_Union[DraftBlock, _Mapping]] = ..., hidden: _Optional[_Union[HiddenUpload, _Mapping]] = ...) -> None: ...

class VerifierResponse(_message.Message):
    __slots__ = ("opened", "verdict", "hidden_request")
    OPENED_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_REQUEST_FIELD_NUMBER: _ClassVar[int]
    opened: SessionOpened
    verdict: Verdict
    hidden_request: HiddenRequest
    def __init__(self, opened: _Optional[_Union[SessionOpened, _Mapping]] = ..., verdict: _Optional[_Union[Verdict, _Mapping]] = ..., hidden_request: _Optional[_Union[HiddenRequest, _Mapping]] = ...) -> None: ...

class HiddenRequest(_message.Message):
    __slots__ = ("round", "positions")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    round: int
    positions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, round: _Optional[int] = ..., positions: _Optional[_Iterable[int]] = ...) -> None: ...

class HiddenUpload(_message.Message):
    __slots__ = ("round", "hidden_states")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_STATES_FIELD_NUMBER: _ClassVar[int]
    round: int
    hidden_states: _common_pb2.Tensor
    def __init__(self, round: _Optional[int] = ..., hidden_states: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ...) -> None: ...

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
    sampling: _common_pb2.SamplingParams
    acceptance: str
    max_new_tokens: int
    send_hidden_states: bool
    draft_hidden_size: int
    acceptance_params: _common_pb2.AcceptanceParams
    def __init__(self, prompt_token_ids: _Optional[_Iterable[int]] = ..., sampling: _Optional[_Union[_common_pb2.SamplingParams, _Mapping]] = ..., acceptance: _Optional[str] = ..., max_new_tokens: _Optional[int] = ..., send_hidden_states: _Optional[bool] = ..., draft_hidden_size: _Optional[int] = ..., acceptance_params: _Optional[_Union[_common_pb2.AcceptanceParams, _Mapping]] = ...) -> None: ...

class SessionOpened(_message.Message):
    __slots__ = ("session_id", "prefill_ms", "counters", "vocab_size")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PREFILL_MS_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    prefill_ms: float
    counters: _common_pb2.SessionCounters
    vocab_size: int
    def __init__(self, session_id: _Optional[str] = ..., prefill_ms: _Optional[float] = ..., counters: _Optional[_Union[_common_pb2.SessionCounters, _Mapping]] = ..., vocab_size: _Optional[int] = ...) -> None: ...

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
    hidden_states: _common_pb2.Tensor
    correction: int
    draft_ms: float
    server_tokens: int
    predrafted: int
    top_q: _common_pb2.TopProbs
    rtt_ms: float
    uplink_bps: float
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, session_id: _Optional[str] = ..., round: _Optional[int] = ..., token_ids: _Optional[_Iterable[int]] = ..., q_probs: _Optional[_Iterable[float]] = ..., entropies: _Optional[_Iterable[float]] = ..., hidden_states: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., correction: _Optional[int] = ..., draft_ms: _Optional[float] = ..., server_tokens: _Optional[int] = ..., predrafted: _Optional[int] = ..., top_q: _Optional[_Union[_common_pb2.TopProbs, _Mapping]] = ..., rtt_ms: _Optional[float] = ..., uplink_bps: _Optional[float] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

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
    residual_p: _common_pb2.Distribution
    verify_ms: float
    counters: _common_pb2.SessionCounters
    draining: bool
    relaxed_accepted: int
    queue_ms: float
    def __init__(self, round: _Optional[int] = ..., accepted: _Optional[int] = ..., token: _Optional[int] = ..., residual_p: _Optional[_Union[_common_pb2.Distribution, _Mapping]] = ..., verify_ms: _Optional[float] = ..., counters: _Optional[_Union[_common_pb2.SessionCounters, _Mapping]] = ..., draining: _Optional[bool] = ..., relaxed_accepted: _Optional[int] = ..., queue_ms: _Optional[float] = ...) -> None: ...

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
