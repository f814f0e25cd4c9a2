from edgespec.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DrafterRequest(_message.Message):
    __slots__ = ("open", "propose", "commit")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    PROPOSE_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    open: _common_pb2.SessionOpen
    propose: ProposeRequest
    commit: _common_pb2.Verdict
    def __init__(self, open: _Optional[_Union[_common_pb2.SessionOpen, _Mapping]] = ..., propose: _Optional[_Union[ProposeRequest, _Mapping]] = ..., commit: _Optional[_Union[_common_pb2.Verdict, _Mapping]] = ...) -> None: ...

class DrafterResponse(_message.Message):
    __slots__ = ("opened", "block", "committed")
    OPENED_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    opened: _common_pb2.SessionOpened
    block: _common_pb2.DraftBlock
    committed: Committed
    def __init__(self, opened: _Optional[_Union[_common_pb2.SessionOpened, _Mapping]] = ..., block: _Optional[_Union[_common_pb2.DraftBlock, _Mapping]] = ..., committed: _Optional[_Union[Committed, _Mapping]] = ...) -> None: ...

class ProposeRequest(_message.Message):
    __slots__ = ("k", "stop_entropy", "stop_keep_trigger", "ahead", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    K_FIELD_NUMBER: _ClassVar[int]
    STOP_ENTROPY_FIELD_NUMBER: _ClassVar[int]
    STOP_KEEP_TRIGGER_FIELD_NUMBER: _ClassVar[int]
    AHEAD_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    k: int
    stop_entropy: float
    stop_keep_trigger: bool
    ahead: int
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, k: _Optional[int] = ..., stop_entropy: _Optional[float] = ..., stop_keep_trigger: _Optional[bool] = ..., ahead: _Optional[int] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Committed(_message.Message):
    __slots__ = ("token_ids",)
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, token_ids: _Optional[_Iterable[int]] = ...) -> None: ...
