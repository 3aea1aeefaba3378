"""Compact, append-only encodings for strategy histories that the runner saves after every trial.

A history that grows with every episode (Q-learning's replay memory, REINFORCE's update log) saved as
JSON lists costs O(n) float and list formatting per save, O(n^2) over a search. Appending varints and
raw float64s to a byte buffer as the history grows makes each save one base64 encoding of bytes that
already exist. Floats are stored bit-exactly, so a reloaded strategy rebuilds the same state.
"""

from __future__ import annotations

import base64
import struct

_FLOAT = struct.Struct("<d")


class Packer:
    """A byte buffer that only grows: unsigned varints (LEB128), float64s and token lists."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = bytearray(data)

    def uint(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"cannot pack a negative count {value}")
        out = self.data
        while value >= 0x80:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)

    def float(self, value: float) -> None:
        self.data += _FLOAT.pack(value)

    def tokens(self, tokens: list[int] | tuple[int, ...]) -> None:
        self.uint(len(tokens))
        for t in tokens:
            self.uint(int(t))

    def text(self) -> str:
        return base64.b64encode(bytes(self.data)).decode("ascii")

    @classmethod
    def from_text(cls, text: str) -> Packer:
        return cls(base64.b64decode(text.encode("ascii"), validate=True))


class Unpacker:
    """Reads what a `Packer` wrote, in the same order."""

    def __init__(self, data: bytes | bytearray) -> None:
        self.data, self.pos = bytes(data), 0

    def done(self) -> bool:
        return self.pos >= len(self.data)

    def uint(self) -> int:
        value, shift, data = 0, 0, self.data
        while True:
            byte = data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def float(self) -> float:
        (value,) = _FLOAT.unpack_from(self.data, self.pos)
        self.pos += _FLOAT.size
        return float(value)

    def tokens(self) -> list[int]:
        return [self.uint() for _ in range(self.uint())]
