"""The weight-sharing supernet of the `nasnet` space, for ENAS (one path) and DARTS (the relaxation).

A NASNet block reads two states it chooses, applies an op to each and adds or concatenates the results;
a cell outputs the blocks nobody reads. Sharing weights across all of that needs fixed widths and
resolutions, so the supernet follows ENAS's micro search (Pham et al., 2018), whose weights are per
block, input slot and op and are shared across the state the slot reads:

- every state has `channels` channels; a reduction cell first halves its two inputs (factorized reduce)
  and runs every op at stride 1, as ENAS's reduction cell does (the final network, `NASNetSpace.build`,
  runs the ops that read the cell inputs at stride 2 instead);
- a `concat` block is brought back to `channels` by its own 1x1 conv (ReLU, conv, BN);
- the cell output is one 1x1 conv over the concatenated loose ends, with the weight columns of the states
  used (ENAS's final conv), so any number of loose ends gives the same width.

The DARTS relaxation has three α per cell: a softmax over the states each slot may read (its input is
the weighted sum of them), one over each slot's ops, and one over add/concat per block. The mixture's
cell output reads every block (nothing is a loose end yet), as the DARTS cell does. `derive()` takes each
argmax; inputs are those a slot may read, so the derived cell is always valid.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture
from nasforge.data.base import DataSpec
from nasforge.models.networks import Classifier, image_shape
from nasforge.models.ops import FactorizedReduce, ReLUConvBN
from nasforge.oneshot.mixture import SourceCache
from nasforge.oneshot.supernet_base import MixedOp, Supernet, _is_reduction, _mixed, _new_alpha, stack_cells
from nasforge.spaces.nasnet import CELLS, COMBINE

_MASKED = -1e9  # logit of a state a slot may not read: softmax weight exactly 0, entropy term 0


def _adapter(c_in: int, c_out: int, halvings: int, affine: bool) -> nn.Module:
    """A cell input brought to `c_out` channels and halved `halvings` times (0, 1 or 2)."""
    if halvings == 0:
        return ReLUConvBN(c_in, c_out, 1, affine=affine)
    steps: list[nn.Module] = [FactorizedReduce(c_in, c_out, affine)]
    steps += [FactorizedReduce(c_out, c_out, affine) for _ in range(halvings - 1)]
    return steps[0] if len(steps) == 1 else nn.Sequential(*steps)


class NASNetSearchCell(nn.Module):
    """One cell of the supernet: per block two slots (a mixed op each), a concat projection, a shared output
    conv over the block states."""

    def __init__(self, names: tuple[str, ...], num_blocks: int, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool, affine: bool) -> None:
        super().__init__()
        self.num_blocks, self.channels, self.reduction = num_blocks, c, reduction
        self.pre0 = _adapter(c_pp, c, int(reduction_prev) + int(reduction), affine)
        self.pre1 = _adapter(c_p, c, int(reduction), affine)
        self.slots = nn.ModuleList(MixedOp(names, c, c, 1, affine) for _ in range(2 * num_blocks))
        self.concat_proj = nn.ModuleList(ReLUConvBN(2 * c, c, 1, affine=affine) for _ in range(num_blocks))
        self.out_weight = nn.Parameter(torch.empty(c, num_blocks * c, 1, 1))
        nn.init.kaiming_normal_(self.out_weight)
        self.out_bn = nn.BatchNorm2d(c, affine=affine)
        self.out_channels = c

    def _output(self, states: list[torch.Tensor], used: list[int]) -> torch.Tensor:
        """1x1 conv over the block states `used` (block indices), with their columns of the shared weight."""
        c = self.channels
        weight = self.out_weight.reshape(c, self.num_blocks, c)[:, used].reshape(c, len(used) * c, 1, 1)
        x = F.relu(torch.cat([states[2 + b] for b in used], dim=1))
        return self.out_bn(F.conv2d(x, weight))  # type: ignore[no-any-return]

    def _combine(self, b: int, a: torch.Tensor, c: torch.Tensor, concat: torch.Tensor | bool) -> torch.Tensor:
        if isinstance(concat, bool):
            return self.concat_proj[b](torch.cat([a, c], dim=1)) if concat else a + c  # type: ignore[no-any-return]
        added = a + c
        return added * concat[0] + self.concat_proj[b](torch.cat([a, c], dim=1)) * concat[1]

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: tuple[torch.Tensor, ...] | None = None,
                blocks: list[tuple[int, int, int, int, bool]] | None = None) -> torch.Tensor:
        """Mixture with `weights` = (inputs, ops, combine) softmaxes, or one path: per block
        `(input_a, input_b, column_a, column_b, concat)`."""
        states = [self.pre0(s0), self.pre1(s1)]
        if blocks is not None:
            for b, (a, i_b, col_a, col_b, concat) in enumerate(blocks):
                left = _mixed(self.slots[2 * b]).single(states[a], col_a)
                right = _mixed(self.slots[2 * b + 1]).single(states[i_b], col_b)
                states.append(self._combine(b, left, right, concat))
            read = {i for a, i_b, *_ in blocks for i in (a, i_b)}
            return self._output(states, [b for b in range(self.num_blocks) if b + 2 not in read])
        assert weights is not None
        inputs, ops, combine = weights
        cache = SourceCache()
        for b in range(self.num_blocks):
            halves = []
            for s in (2 * b, 2 * b + 1):
                mixed_input = sum(inputs[s, j] * states[j] for j in range(b + 2))
                assert isinstance(mixed_input, torch.Tensor)
                halves.append(_mixed(self.slots[s])(mixed_input, ops[s], cache))
            states.append(self._combine(b, halves[0], halves[1], combine[b]))
        return self._output(states, list(range(self.num_blocks)))


class NASNetSupernet(Supernet):
    """Stem, the space's plan of normal and reduction cells (`cells_per_stage` per stage), pool, linear."""

    def __init__(self, space: Any, spec: DataSpec, cells_per_stage: int = 1, channels: int = 8,
                 stem_multiplier: int = 3, affine: bool = False) -> None:
        super().__init__()
        if int(cells_per_stage) < 1 or int(channels) < 2 or int(stem_multiplier) < 1:
            raise ConfigError("nasnet supernet: cells_per_stage and stem_multiplier must be positive, "
                              "channels at least 2")
        self.space, self.spec = space, spec
        allowed = space.ops if space.ops is not None else list(space.ops_vocabulary)
        self.names: tuple[str, ...] = tuple(o for o in space.ops_vocabulary if o in allowed)
        self.num_blocks = int(space.num_blocks)
        normal = [False] * int(cells_per_stage)
        self.plan = [*normal, True, *normal, True, *normal]
        in_channels, _, _ = image_shape(spec.input_shape, "nasnet")
        self.stem, self.cells, c_p = stack_cells(
            lambda c_pp, c_p, c, red, red_prev: NASNetSearchCell(self.names, self.num_blocks, c_pp, c_p, c, red,
                                                                 red_prev, affine),
            self.plan, in_channels, int(channels), int(stem_multiplier))
        self.classifier = Classifier(c_p, int(spec.num_outputs))
        slots, sources = 2 * self.num_blocks, self.num_blocks + 1
        self.alphas = nn.ParameterList()
        for _ in CELLS:
            self.alphas.extend([_new_alpha(slots, sources), _new_alpha(slots, len(self.names)),
                                _new_alpha(self.num_blocks, len(COMBINE))])
        self.readable: torch.Tensor
        self.register_buffer("readable", torch.tensor([[j < s // 2 + 2 for j in range(sources)]
                                                       for s in range(slots)]), persistent=False)

    def op_columns(self) -> dict[str, int]:
        return {name: k for k, name in enumerate(self.names)}

    def mixed_edges(self) -> list[tuple[int, int, MixedOp]]:
        """(α index, α row, slot): slot s of a cell is row s of its cell type's op α."""
        return [(3 * _is_reduction(cell) + 1, s, _mixed(slot)) for cell in self.cells
                for s, slot in enumerate(cell.slots)]  # type: ignore[union-attr, arg-type]

    def softmax_alphas(self) -> list[torch.Tensor]:
        out = []
        for k, alpha in enumerate(self.alphas):
            out.append(alpha.masked_fill(~self.readable, _MASKED) if k % 3 == 0 else alpha)
        return out

    def _cell_weights(self, cell: str) -> tuple[torch.Tensor, ...]:
        logits = self.softmax_alphas()[3 * CELLS.index(cell): 3 * CELLS.index(cell) + 3]
        return tuple(torch.softmax(a, dim=-1) for a in logits)

    def forward(self, x: torch.Tensor, arch: Architecture | None = None) -> torch.Tensor:
        s0 = s1 = self.stem(self.images(x))
        if arch is None:
            weights = [self._cell_weights(cell) for cell in CELLS]
            for cell in self.cells:
                s0, s1 = s1, cell(s0, s1, weights=weights[_is_reduction(cell)])
        else:
            paths = [self._path(arch, cell) for cell in CELLS]
            for cell in self.cells:
                s0, s1 = s1, cell(s0, s1, blocks=paths[_is_reduction(cell)])
        return self.classifier(s1)  # type: ignore[no-any-return]

    def _path(self, arch: Architecture, cell: str) -> list[tuple[int, int, int, int, bool]]:
        columns = self.op_columns()
        try:
            return [(a, b, columns[op_a], columns[op_b], combine == "concat")
                    for a, op_a, b, op_b, combine in self.space.blocks(arch, cell)]
        except KeyError as exc:
            raise ValueError(f"nasnet supernet: op {exc} is not a candidate of this supernet") from exc

    def arch_weights(self) -> dict[str, torch.Tensor]:
        out = {}
        for cell in CELLS:
            for part, w in zip(("inputs", "ops", "combine"), self._cell_weights(cell)):
                out[f"{cell}_{part}"] = w.detach()
        return out

    def derive(self) -> Architecture:
        """Each slot's strongest readable input and its strongest op; each block's stronger combination."""
        weights = self.arch_weights()
        description: dict[str, Any] = {}
        for cell in CELLS:
            inputs = weights[f"{cell}_inputs"].argmax(dim=-1).tolist()
            ops = weights[f"{cell}_ops"].argmax(dim=-1).tolist()
            combine = weights[f"{cell}_combine"].argmax(dim=-1).tolist()
            description[cell] = [{"inputs": [inputs[2 * b], inputs[2 * b + 1]],
                                  "ops": [self.names[ops[2 * b]], self.names[ops[2 * b + 1]]],
                                  "combine": COMBINE[combine[b]]} for b in range(self.num_blocks)]
        return self.space.parse(description)  # type: ignore[no-any-return]
