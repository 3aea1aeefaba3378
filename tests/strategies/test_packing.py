from __future__ import annotations

import math

import pytest

from nasforge.strategies.packing import Packer, Unpacker


def test_round_trip_is_exact() -> None:
    ints = [0, 1, 127, 128, 255, 300, 16383, 16384, 2**40 + 7]
    floats = [0.0, -0.0, 1.0, -2.5, math.pi, 1e-300, 5e-324, 1.7976931348623157e308, 88.12345678901234]
    out = Packer()
    for i, x in zip(ints, floats):
        out.uint(i)
        out.float(x)
    out.tokens([3, 0, 200, 1])
    read = Unpacker(Packer.from_text(out.text()).data)
    for i, x in zip(ints, floats):
        assert read.uint() == i
        y = read.float()
        assert y == x and math.copysign(1.0, y) == math.copysign(1.0, x)  # -0.0 stays -0.0
    assert read.tokens() == [3, 0, 200, 1] and read.done()


def test_negative_counts_and_damaged_text_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Packer().uint(-1)
    with pytest.raises(ValueError):
        Packer.from_text("not base64!")
