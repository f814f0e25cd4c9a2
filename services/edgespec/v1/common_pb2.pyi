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
