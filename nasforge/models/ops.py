"""The one table of cell operations every cell space builds from (the DARTS idea).

Every factory has the same signature, `(c_in, c_out, stride, affine) -> nn.Module`, and every
op maps `(N, c_in, H, W)` to `(N, c_out, ceil(H / stride), ceil(W / stride))`. Because any op
accepts any channel change and stride, a space never special-cases an op: NASNet's reduction
cells, DARTS's normal cells, ENAS's macro layers and the NAS-Bench-201 cell all draw from here,
and a later supernet shares these names (and these modules) with the spaces.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

OpFactory = Callable[[int, int, int, bool], nn.Module]


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv -> BN: pre-activation, so a sum of ops is a sum of normalised terms."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable convs (DARTS/NASNet): the first carries the stride."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, affine: bool = True) -> None:
        pad = kernel // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=pad, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, bias=False),
            nn.BatchNorm2d(c_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, padding=pad, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """A dilated (rate 2) depthwise-separable conv: a wide receptive field for few weights."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=kernel - 1, dilation=2, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class FactorizedConv(nn.Sequential):
    """A 1xk conv then a kx1 conv: a kxk receptive field at 2k instead of k² weights per channel pair."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, affine: bool = True) -> None:
        pad = kernel // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, (1, kernel), stride=(1, stride), padding=(0, pad), bias=False),
            nn.Conv2d(c_out, c_out, (kernel, 1), stride=(stride, 1), padding=(pad, 0), bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class FactorizedReduce(nn.Module):
    """Halves the resolution without losing every other pixel: two offset stride-2 1x1 convs, concatenated.

    The second path reads the input shifted by one pixel (zero-padded at the far edge), so both
    paths give ceil(H/2) rows for odd sizes too.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        half = c_out // 2
        self.relu = nn.ReLU(inplace=False)
        self.conv_a = nn.Conv2d(c_in, half, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out - half, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


class Zero(nn.Module):
    """The `none` op: the right shape (stride and width applied) but no contribution."""

    def __init__(self, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.c_out = c_out
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # multiplying (not new_zeros) keeps the graph, so backward through a `none` edge works
        x = x[:, :, :: self.stride, :: self.stride]
        if x.shape[1] == self.c_out:
            return x.mul(0.0)
        return x[:, :1].mul(0.0).expand(-1, self.c_out, -1, -1)


class Pool(nn.Module):
    """Max or average pooling, then a 1x1 ReLU-conv-BN only when the width must change."""

    def __init__(self, kind: str, kernel: int, c_in: int, c_out: int, stride: int, affine: bool) -> None:
        super().__init__()
        pad = kernel // 2
        self.pool: nn.Module = (nn.MaxPool2d(kernel, stride=stride, padding=pad) if kind == "max"
                                else nn.AvgPool2d(kernel, stride=stride, padding=pad, count_include_pad=False))
        self.project: nn.Module = nn.Identity() if c_in == c_out else ReLUConvBN(c_in, c_out, 1, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.pool(x))


def identity(c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
    """Identity where shapes allow; a factorized reduce at stride 2, a 1x1 conv when only the width differs."""
    if stride != 1:
        return FactorizedReduce(c_in, c_out, affine=affine)
    if c_in != c_out:
        return ReLUConvBN(c_in, c_out, 1, affine=affine)
    return nn.Identity()


def _pool(kind: str, kernel: int) -> OpFactory:
    return lambda c_in, c_out, stride, affine: Pool(kind, kernel, c_in, c_out, stride, affine)


def _conv(kernel: int) -> OpFactory:
    return lambda c_in, c_out, stride, affine: ReLUConvBN(c_in, c_out, kernel, stride, affine)


def _sep(kernel: int) -> OpFactory:
    return lambda c_in, c_out, stride, affine: SepConv(c_in, c_out, kernel, stride, affine)


def _dil(kernel: int) -> OpFactory:
    return lambda c_in, c_out, stride, affine: DilConv(c_in, c_out, kernel, stride, affine)


def _factorized(kernel: int) -> OpFactory:
    return lambda c_in, c_out, stride, affine: FactorizedConv(c_in, c_out, kernel, stride, affine)


# Name -> factory(c_in, c_out, stride, affine). Names follow the DARTS code where it has one.
OPS: dict[str, OpFactory] = {
    "none": lambda c_in, c_out, stride, affine: Zero(c_out, stride),
    "skip_connect": identity,
    "identity": identity,
    "max_pool_3x3": _pool("max", 3),
    "max_pool_5x5": _pool("max", 5),
    "max_pool_7x7": _pool("max", 7),
    "avg_pool_3x3": _pool("avg", 3),
    "avg_pool_5x5": _pool("avg", 5),
    "sep_conv_3x3": _sep(3),
    "sep_conv_5x5": _sep(5),
    "sep_conv_7x7": _sep(7),
    "dil_conv_3x3": _dil(3),
    "dil_conv_5x5": _dil(5),
    "conv_1x1": _conv(1),
    "conv_3x3": _conv(3),
    "conv_5x5": _conv(5),
    "nor_conv_1x1": _conv(1),  # NAS-Bench-201's names for the same ReLU-conv-BN
    "nor_conv_3x3": _conv(3),
    "conv_1x3_3x1": _factorized(3),
    "conv_1x7_7x1": _factorized(7),
}


def make_op(name: str, c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
    """The module for op `name`; one clear error for an unknown name."""
    if name not in OPS:
        raise ValueError(f"unknown op {name!r}; choose one of: {', '.join(OPS)}")
    return OPS[name](c_in, c_out, stride, affine)
