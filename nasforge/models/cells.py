"""The NASNet/DARTS cell: blocks that each combine two ops applied to earlier hidden states.

One module serves both papers because their cells differ only in data: NASNet picks a
combination (add or concat) per block and outputs the unused blocks; DARTS always adds and
outputs every intermediate node. States 0 and 1 are the cell's inputs (h_{i-2}, h_{i-1});
block b writes state b + 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from nasforge.models.ops import FactorizedReduce, ReLUConvBN, make_op
from nasforge.models.tricks import drop_path


@dataclass(frozen=True)
class BlockSpec:
    """One block: `op_a(state[input_a]) (+ or concat) op_b(state[input_b])`."""

    input_a: int
    op_a: str
    input_b: int
    op_b: str
    combine: str = "add"

    def __post_init__(self) -> None:
        if self.combine not in ("add", "concat"):
            raise ValueError(f"block combine must be 'add' or 'concat', got {self.combine!r}")


class Cell(nn.Module):
    """A normal or reduction cell; `out_channels` is the width of its (concatenated) output.

    Both inputs are first brought to `channels` by a 1x1 conv (a factorized reduce for h_{i-2}
    when the previous cell halved the resolution). In a reduction cell the ops that read the
    cell inputs use stride 2; ops on block outputs are already at the reduced resolution.
    """

    def __init__(self, blocks: Sequence[BlockSpec], concat: Sequence[int], c_prev_prev: int, c_prev: int,
                 channels: int, reduction: bool, reduction_prev: bool, affine: bool = True) -> None:
        super().__init__()
        if not concat:
            raise ValueError("a cell needs at least one output state")
        self.blocks = tuple(blocks)
        self.concat = tuple(concat)
        self.reduction = reduction
        self.pre0: nn.Module = (FactorizedReduce(c_prev_prev, channels, affine) if reduction_prev
                                else ReLUConvBN(c_prev_prev, channels, 1, affine=affine))
        self.pre1 = ReLUConvBN(c_prev, channels, 1, affine=affine)
        widths = [channels, channels]
        ops: list[nn.Module] = []
        for b, block in enumerate(self.blocks):
            for src, name in ((block.input_a, block.op_a), (block.input_b, block.op_b)):
                if not 0 <= src < b + 2:
                    raise ValueError(f"block {b} reads state {src}, but only states 0..{b + 1} exist")
                stride = 2 if reduction and src < 2 else 1
                ops.append(make_op(name, widths[src], channels, stride, affine))
            widths.append(channels * (2 if block.combine == "concat" else 1))
        self.ops = nn.ModuleList(ops)
        # drop-path spares identities, as in the papers' code: dropping a skip would only drop the input
        self._droppable = tuple(not isinstance(op, nn.Identity) for op in ops)
        self.drop_prob = 0.0  # set by the final training's schedule; 0 in search trials
        for i in self.concat:
            if not 2 <= i < len(widths):
                raise ValueError(f"cell output state {i} is not a block output (2..{len(widths) - 1})")
        self.out_channels = sum(widths[i] for i in self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        drop = self.drop_prob if self.training else 0.0
        for b, block in enumerate(self.blocks):
            a = self.ops[2 * b](states[block.input_a])
            c = self.ops[2 * b + 1](states[block.input_b])
            if drop > 0.0:
                a = drop_path(a, drop) if self._droppable[2 * b] else a
                c = drop_path(c, drop) if self._droppable[2 * b + 1] else c
            states.append(a + c if block.combine == "add" else torch.cat([a, c], dim=1))
        return torch.cat([states[i] for i in self.concat], dim=1)


def unused_states(blocks: Sequence[BlockSpec]) -> list[int]:
    """Block outputs no later block reads: NASNet concatenates exactly these as the cell output."""
    read = {i for block in blocks for i in (block.input_a, block.input_b)}
    return [b + 2 for b in range(len(blocks)) if b + 2 not in read]
