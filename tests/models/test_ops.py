"""The shared op table: every op takes any width change and stride; FLOPs counted from real shapes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nasforge.models.flops import count_flops, count_params
from nasforge.models.ops import OPS, FactorizedReduce, Zero, make_op
from nasforge.spaces.darts import DARTS_OPS
from nasforge.spaces.enas_macro import ENAS_OPS
from nasforge.spaces.nasnet import NASNET_OPS
from nasforge.spaces.nb201 import OPS as NB201_OPS

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny ops: threads only add overhead


def test_every_space_vocabulary_is_in_the_one_table() -> None:
    for vocabulary in (NASNET_OPS, DARTS_OPS, ENAS_OPS, NB201_OPS):
        assert set(vocabulary) <= set(OPS)
    assert len(NASNET_OPS) == 13 and len(DARTS_OPS) == 8 and len(ENAS_OPS) == 6


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_shapes_for_any_width_and_stride(name: str) -> None:
    for size in (7, 8):  # odd sizes too: stride 2 always gives ceil(size / 2)
        x = torch.randn(2, 4, size, size, requires_grad=True)
        for c_out, stride in ((4, 1), (6, 1), (4, 2), (6, 2)):
            op = make_op(name, 4, c_out, stride)
            out = op(x)
            assert out.shape == (2, c_out, math.ceil(size / stride), math.ceil(size / stride)), (name, c_out, stride)
            out.sum().backward()


def test_identity_is_free_only_when_shapes_match() -> None:
    assert isinstance(OPS["skip_connect"](4, 4, 1, True), nn.Identity)
    assert isinstance(OPS["identity"](4, 8, 2, True), FactorizedReduce)
    assert count_params(OPS["identity"](4, 8, 1, True)) > 0
    assert count_params(OPS["max_pool_3x3"](4, 4, 2, True)) == 0


def test_zero_is_zero_with_the_right_shape() -> None:
    out = OPS["none"](4, 6, 2, True)(torch.randn(1, 4, 5, 5))
    assert isinstance(OPS["none"](4, 4, 1, True), Zero)
    assert out.shape == (1, 6, 3, 3) and not out.any()


def test_unknown_op_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown op 'conv_9x9'"):
        make_op("conv_9x9", 4, 4)


def test_count_flops_conv_linear_and_depthwise() -> None:
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
    assert count_flops(conv, (3, 8, 8)) == 8 * 8 * 8 * 3 * 9 + 8 * 8 * 8 * 10
    depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4)
    assert count_flops(depthwise, (4, 5, 5)) == 4 * 5 * 5 * 9
    strided = nn.Conv2d(2, 2, 1, stride=2)
    assert count_flops(strided, (2, 7, 7)) == 2 * 4 * 4 * 2


def test_count_flops_keeps_training_mode_and_takes_token_ids() -> None:
    model = nn.Sequential(nn.Embedding(11, 4), nn.Linear(4, 11))
    model.train()
    assert count_flops(model, (5,), dtype=torch.long) == 5 * 4 * 11
    assert model.training
