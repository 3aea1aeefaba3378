"""NAS-Bench-201's network: a conv stem, three stages of identical cells, residual reductions.

The skeleton matches the benchmark's, so a cell found on the table can be retrained here and
compared with its tabulated accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import torch
from torch import nn

from nasforge.core.types import Architecture
from nasforge.models.ops import OPS as OPS_TABLE
from nasforge.models.ops import OpFactory, ReLUConvBN, Zero
from nasforge.spaces.nb201_cell import EDGES, NODES, OPS

if TYPE_CHECKING:
    from nasforge.data.base import DataSpec


# One small factory per op name, taken from the shared op table; every cell op keeps the
# channel count and resolution.
def _same_width(factory: OpFactory, channels: int) -> nn.Module:
    return factory(channels, channels, 1, True)


OP_FACTORIES: dict[str, Callable[[int], nn.Module]] = {name: partial(_same_width, OPS_TABLE[name]) for name in OPS}
# ReLUConvBN and Zero now live in nasforge.models.ops; re-exported for existing imports.
__all__ = ["OP_FACTORIES", "Cell", "NB201Network", "ReLUConvBN", "ResidualReduction", "Zero", "build"]


class Cell(nn.Module):
    """Node i is the sum over j < i of op_ij(node j); the cell's output is node 3."""

    def __init__(self, ops: tuple[str, ...], channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(OP_FACTORIES[op](channels) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        k = 0
        for node in range(1, NODES):
            total = self.edges[k](nodes[0])
            for j in range(1, node):
                total = total + self.edges[k + j](nodes[j])
            k += node
            nodes.append(total)
        return nodes[-1]


class ResidualReduction(nn.Module):
    """Halves the resolution and changes the width between stages (a ResNet basic block)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    def __init__(self, ops: tuple[str, ...], in_channels: int, num_outputs: int,
                 cells_per_stage: int = 5, channels: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers.extend(Cell(ops, c) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:  # (N, H, W) grey images
            x = x.unsqueeze(1)
        x = self.head(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


def build(arch: Architecture, data: DataSpec, cells_per_stage: int = 5, channels: int = 16) -> nn.Module:
    """The network for `arch`; `data.input_shape` is channels-first (C, H, W) or (H, W) for one channel."""
    if len(arch.tokens) != len(EDGES):
        raise ValueError(f"nb201: need {len(EDGES)} tokens, got {len(arch.tokens)}")
    shape = tuple(data.input_shape)
    if len(shape) == 3:
        in_channels = int(shape[0])
    elif len(shape) == 2:
        in_channels = 1
    else:
        raise ValueError(f"nb201: needs image input (C, H, W), got input_shape {shape}")
    ops = tuple(OPS[t] for t in arch.tokens)
    return NB201Network(ops, in_channels, int(data.num_outputs), cells_per_stage, channels)
