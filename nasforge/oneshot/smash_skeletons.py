"""SMASH's network skeletons: everything of a space's network but the cell ops, whose weights come from outside.

The skeleton (stem, reductions, classifier, the cells' fixed pre-processing) keeps ordinary trained
weights. A network is a set of memory banks (feature maps) that each op reads from and writes to:
a bank is a cell state (NAS-Bench-201: node 0..3; DARTS: the two cell inputs and the blocks), and
every edge of the cell is an op slot (`OpSlot`) that reads one bank and adds into another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture
from nasforge.data.base import DataSpec
from nasforge.models.nb201_net import ResidualReduction
from nasforge.models.networks import Classifier, as_images, image_shape
from nasforge.models.ops import FactorizedReduce, ReLUConvBN
from nasforge.spaces.darts import DARTSSpace
from nasforge.spaces.nb201 import EDGES, NODES, NB201Space
from nasforge.spaces.nb201 import OPS as NB201_OPS

Apply = Callable[[int, torch.Tensor], torch.Tensor]


def use_batch_statistics(module: nn.Module) -> nn.Module:
    """Every batch norm normalises with the batch's own statistics, in training and in scoring.

    Running averages would mix the statistics of every sampled architecture; the one-shot
    practice (DARTS, ENAS) is to score each candidate with batch statistics instead.
    """
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None
    return module


# ---- the skeletons: everything but the cell ops, which take weights from outside -------------------------
@dataclass(frozen=True)
class OpSlot:
    """One op of the network in memory-bank terms: in cell `cell` it reads bank `read` and adds into `write`."""

    cell: int
    read: int
    write: int
    op: str
    channels: int
    stride: int
    reduction: bool


class NB201Skeleton(nn.Module):
    """NAS-Bench-201's network (as `nb201_net`) whose cells' edges are applied from outside."""

    op_vocabulary: tuple[str, ...] = NB201_OPS
    num_banks = NODES
    slots_per_cell = len(EDGES)
    strides: tuple[int, ...] = (1,)

    def __init__(self, in_channels: int, num_outputs: int, channels: int, cells_per_stage: int) -> None:
        super().__init__()
        self.cells_per_stage = cells_per_stage
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.reductions = nn.ModuleList([ResidualReduction(channels, 2 * channels),
                                         ResidualReduction(2 * channels, 4 * channels)])
        self.head = nn.Sequential(nn.BatchNorm2d(4 * channels), nn.ReLU(inplace=False))
        self.classifier = Classifier(4 * channels, num_outputs)
        self.cell_widths = [channels * 2 ** stage for stage in range(3) for _ in range(cells_per_stage)]
        self.cell_reductions = [False] * len(self.cell_widths)
        use_batch_statistics(self)

    def slots(self, arch: Architecture) -> list[OpSlot]:
        ops = [NB201_OPS[t] for t in arch.tokens]
        return [OpSlot(cell, j, i, ops[k], width, 1, False)
                for cell, width in enumerate(self.cell_widths) for k, (i, j) in enumerate(EDGES)]

    def run(self, x: torch.Tensor, slots: Sequence[OpSlot], apply: Apply) -> torch.Tensor:
        x = self.stem(as_images(x))
        k = 0
        for stage in range(3):
            if stage > 0:
                x = self.reductions[stage - 1](x)
            for _ in range(self.cells_per_stage):
                nodes = [x]
                for node in range(1, NODES):
                    total = apply(k, nodes[slots[k].read])
                    for j in range(1, node):
                        total = total + apply(k + j, nodes[slots[k + j].read])
                    k += node
                    nodes.append(total)
                x = nodes[-1]
        return self.classifier(self.head(x))


class DARTSSkeleton(nn.Module):
    """The DARTS cell network (as `networks.CellNetwork`): stem and per-cell 1x1 pre-processing are stored;
    the two ops of every block are applied from outside."""

    strides: tuple[int, ...] = (1, 2)

    def __init__(self, space: DARTSSpace, in_channels: int, num_outputs: int, channels: int, layers: int,
                 stem_multiplier: int = 3) -> None:
        super().__init__()
        self.space = space
        self.op_vocabulary = space.ops_vocabulary
        self.num_banks = space.num_blocks + 2
        self.slots_per_cell = 2 * space.num_blocks
        plan = DARTSSpace(space.num_blocks, layers, channels, space.ops).plan()
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_pp, c_p, c = c_stem, c_stem, channels
        pre0: list[nn.Module] = []
        pre1: list[nn.Module] = []
        self.cell_widths: list[int] = []
        reduction_prev = False
        for reduction in plan:
            c = 2 * c if reduction else c
            pre0.append(FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1))
            pre1.append(ReLUConvBN(c_p, c, 1))
            self.cell_widths.append(c)
            c_pp, c_p, reduction_prev = c_p, space.num_blocks * c, reduction
        self.cell_reductions = list(plan)
        self.pre0 = nn.ModuleList(pre0)
        self.pre1 = nn.ModuleList(pre1)
        self.classifier = Classifier(c_p, num_outputs)
        use_batch_statistics(self)

    def slots(self, arch: Architecture) -> list[OpSlot]:
        out: list[OpSlot] = []
        for cell, (width, reduction) in enumerate(zip(self.cell_widths, self.cell_reductions)):
            for b, (a, op_a, b_in, op_b, _) in enumerate(self.space.blocks(arch, "reduce" if reduction else "normal")):
                for src, op in ((a, op_a), (b_in, op_b)):
                    out.append(OpSlot(cell, src, b + 2, op, width, 2 if reduction and src < 2 else 1, reduction))
        return out

    def run(self, x: torch.Tensor, slots: Sequence[OpSlot], apply: Apply) -> torch.Tensor:
        s0 = s1 = self.stem(as_images(x))
        k = 0
        for pre0, pre1 in zip(self.pre0, self.pre1):
            states = [pre0(s0), pre1(s1)]
            for _ in range(self.space.num_blocks):
                states.append(apply(k, states[slots[k].read]) + apply(k + 1, states[slots[k + 1].read]))
                k += 2
            s0, s1 = s1, torch.cat(states[2:], dim=1)
        return self.classifier(s1)


Skeleton = NB201Skeleton | DARTSSkeleton


def make_skeleton(space: Any, spec: DataSpec, channels: int | None, depth: int | None) -> Skeleton:
    """The skeleton of `space` at the space's own width and depth unless `channels`/`depth` override them."""
    in_channels, _, _ = image_shape(spec.input_shape, "smash")
    width = int(channels if channels is not None else space.channels)
    if isinstance(space, NB201Space):
        return NB201Skeleton(in_channels, int(spec.num_outputs), width,
                             int(depth if depth is not None else space.cells_per_stage))
    if isinstance(space, DARTSSpace):
        return DARTSSkeleton(space, in_channels, int(spec.num_outputs), width,
                             int(depth if depth is not None else space.layers))
    raise ConfigError(f"smash: space {getattr(space, 'name', space)!r} is not supported; use nb201 or darts")
