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
    open: _common_pb2.SessionOpen
    block: _common_pb2.DraftBlock
    hidden: HiddenUpload
    def __init__(self, open: _Optional[_Union[_common_pb2.SessionOpen, _Mapping]] = ..., block: _Optional[_Union[_common_pb2.DraftBlock, _Mapping]] = ..., hidden: _Optional[_Union[HiddenUpload, _Mapping]] = ...) -> None: ...

class VerifierResponse(_message.Message):
    __slots__ = ("opened", "verdict", "hidden_request")
    OPENED_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_REQUEST_FIELD_NUMBER: _ClassVar[int]
    opened: _common_pb2.SessionOpened
    verdict: _common_pb2.Verdict
    hidden_request: HiddenRequest
    def __init__(self, opened: _Optional[_Union[_common_pb2.SessionOpened, _Mapping]] = ..., verdict: _Optional[_Union[_common_pb2.Verdict, _Mapping]] = ..., hidden_request: _Optional[_Union[HiddenRequest, _Mapping]] = ...) -> None: ...

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
