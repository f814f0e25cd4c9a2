"""The wire form of a fuzz case: fields written as raw protobuf bytes (`Field`, `RawBytes`), the
messages of one call built from them and then truncated or bit-flipped (`Send`), and the call
(`Case`). Pure encoding: no hypothesis strategies (`fuzz_cases.py` draws these), no gRPC.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message


def varint(value: int) -> bytes:
    """Base-128 varint of `value` modulo 2^64 (negative ints as 10-byte two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@dataclass(frozen=True)
class Field:
    """One field written on the wire: `path` the field numbers from the request message down to
    the leaf (`name` says which field that is), the leaf's wire type and value bytes; `repeat`
    repeats the value (huge repeated fields and strings with a small repr)."""

    name: str
    path: tuple[int, ...]
    wire: int           # 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32
    body: bytes
    repeat: int = 1

    def encode(self) -> bytes:
        leaf = self.path[-1] << 3 | self.wire
        if self.wire == 2:
            content = self.body * self.repeat
            data = varint(leaf) + varint(len(content)) + content
        else:
            data = (varint(leaf) + self.body) * self.repeat
        for number in reversed(self.path[:-1]):
            data = varint(number << 3 | 2) + varint(len(data)) + data
        return data


@dataclass(frozen=True)
class Send:
    """One request message: `message` (None: nothing but the fields) with `fields` appended;
    `session` "own" / "victim" sets DraftBlock.session_id to this stream's session or to the
    victim's at send time; then `cut` drops that many trailing bytes and `flips` flips bits."""

    message: Message | None = None
    fields: tuple[Field, ...] = ()
    session: str = ""
    cut: int = 0
    flips: tuple[int, ...] = ()

    def payload(self, own: str = "", victim: str = "") -> bytes:
        message = self.message
        if self.session and message is not None:
            message = type(message).FromString(message.SerializeToString())
            message.block.session_id = own if self.session == "own" else victim
        data = bytearray((message.SerializeToString() if message is not None else b"")
                         + b"".join(f.encode() for f in self.fields))
        if self.cut and data:
            del data[max(0, len(data) - self.cut):]
        for bit in self.flips:
            if data:
                data[bit // 8 % len(data)] ^= 1 << bit % 8
        return bytes(data)


@dataclass(frozen=True)
class Case:
    """One call: the RPC, the family, the messages in order; `wait_opened`: read the first answer
    (the session id) after the first message; the call is half-closed after the last one."""

    family: str
    rpc: str
    sends: tuple[Send, ...]
    wait_opened: bool = False


@dataclass(frozen=True)
class RawBytes:
    """Bytes sent as they are (a `Field` look-alike)."""

    body: bytes

    def encode(self) -> bytes:
        return self.body
