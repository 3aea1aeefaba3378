"""NASNet's cell space (Zoph et al., 2018), and the cell-space machinery DARTS reuses.

A normal and a reduction cell of `num_blocks` blocks each. Per block the tokens are: two
inputs chosen from the hidden states available (0 = h_{i-2}, 1 = h_{i-1}, b + 2 = block b of
this cell), an op for each, and (NASNet only) how the two results combine, add or concat.
The normal cell's tokens come first, then the reduction cell's. A cell outputs its unused
block outputs, concatenated along channels; in a reduction cell the ops applied to the cell
inputs use stride 2.

The two (input, op) pairs of a block are interchangeable, so the canonical key sorts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture, Decision, JSONDict
from nasforge.spaces.base import InvalidArchitecture, TokenSpace

if TYPE_CHECKING:
    import torch

    from nasforge.data.base import DataSpec
    from nasforge.models.networks import CellGenotype

NASNET_OPS: tuple[str, ...] = (
    "identity", "conv_1x3_3x1", "conv_1x7_7x1", "dil_conv_3x3", "avg_pool_3x3", "max_pool_3x3",
    "max_pool_5x5", "max_pool_7x7", "conv_1x1", "conv_3x3", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7",
)
COMBINE: tuple[str, ...] = ("add", "concat")
CELLS: tuple[str, ...] = ("normal", "reduce")
_SHORT = {"identity": "id", "skip_connect": "skip", "none": "0", "avg_pool_3x3": "avg3", "max_pool_3x3": "max3",
          "max_pool_5x5": "max5", "max_pool_7x7": "max7", "conv_1x1": "c1", "conv_3x3": "c3",
          "conv_1x3_3x1": "c1x3", "conv_1x7_7x1": "c1x7", "dil_conv_3x3": "dil3", "dil_conv_5x5": "dil5",
          "sep_conv_3x3": "sep3", "sep_conv_5x5": "sep5", "sep_conv_7x7": "sep7"}


class CellSpace(TokenSpace):
    """Normal + reduction cells of blocks `op_a(in_a) ∘ op_b(in_b)`; subclasses set the vocabulary and rules."""

    name = "cells"
    ops_vocabulary: tuple[str, ...] = NASNET_OPS
    search_combine = True  # a combine token per block (NASNet) or always add (DARTS)
    distinct_inputs = False  # DARTS derives its two inputs from different predecessors
    output_all = False  # cell output: every block (DARTS) or only the unused ones (NASNet)
    default_excluded: tuple[str, ...] = ()

    def __init__(self, num_blocks: int, channels: int, ops: Sequence[str] | None) -> None:
        if int(num_blocks) < 1 or int(channels) < 1:
            raise ConfigError(f"{self.name}: num_blocks and channels must be positive")
        self.num_blocks = int(num_blocks)
        self.channels = int(channels)
        self.ops = list(ops) if ops is not None else None
        wanted = self.ops if self.ops is not None else [o for o in self.ops_vocabulary
                                                         if o not in self.default_excluded]
        unknown = [o for o in wanted if o not in self.ops_vocabulary]
        if unknown or not wanted:
            raise ConfigError(f"{self.name}: ops must be a non-empty subset of {list(self.ops_vocabulary)}, "
                              f"got {wanted}")
        op_mask = tuple(sorted({self.ops_vocabulary.index(o) for o in wanted}))
        self._op_mask = None if len(op_mask) == len(self.ops_vocabulary) else op_mask
        self._per_block = 5 if self.search_combine else 4
        inputs = tuple(range(self.num_blocks + 2))
        layout: list[Decision] = []
        for _cell in CELLS:
            for b in range(self.num_blocks):
                allowed = tuple(range(b + 2))
                layout += [Decision("input", inputs, allowed=allowed, layer=b),
                           Decision("input", inputs, allowed=allowed, layer=b),
                           Decision("op", self.ops_vocabulary, allowed=self._op_mask, layer=b),
                           Decision("op", self.ops_vocabulary, allowed=self._op_mask, layer=b)]
                if self.search_combine:
                    layout.append(Decision("combine", COMBINE, layer=b))
        self._layout = tuple(layout)

    # ---- the walk ----------------------------------------------------------------------
    def decision(self, prefix: Sequence[int]) -> Decision | None:
        n = len(prefix)
        if n >= len(self._layout):
            return None
        dec = self._layout[n]
        if self.distinct_inputs and n % self._per_block == 1:
            first = prefix[n - 1]
            return Decision(dec.name, dec.choices, allowed=tuple(i for i in dec.options if i != first),
                            layer=dec.layer)
        return dec

    # ---- views -------------------------------------------------------------------------
    def blocks(self, arch: Architecture, cell: str) -> list[tuple[int, str, int, str, str]]:
        """(input_a, op_a, input_b, op_b, combine) per block of the "normal" or "reduce" cell."""
        tokens = self.assemble(arch.tokens).tokens
        start = CELLS.index(cell) * self.num_blocks * self._per_block
        out = []
        for b in range(self.num_blocks):
            t = tokens[start + b * self._per_block: start + (b + 1) * self._per_block]
            combine = COMBINE[t[4]] if self.search_combine else "add"
            out.append((t[0], self.ops_vocabulary[t[2]], t[1], self.ops_vocabulary[t[3]], combine))
        return out

    def concat(self, arch: Architecture, cell: str) -> list[int]:
        """The states the cell outputs (concatenated)."""
        if self.output_all:
            return list(range(2, self.num_blocks + 2))
        read = {i for a, _, b, _, _ in self.blocks(arch, cell) for i in (a, b)}
        return [s for s in range(2, self.num_blocks + 2) if s not in read]

    def genotype(self, arch: Architecture, cell: str) -> CellGenotype:
        from nasforge.models.cells import BlockSpec
        from nasforge.models.networks import CellGenotype

        blocks = tuple(BlockSpec(*b) for b in self.blocks(arch, cell))
        return CellGenotype(blocks, tuple(self.concat(arch, cell)))

    def key(self, arch: Architecture) -> str:
        parts = []
        for cell in CELLS:
            blocks = []
            for a, op_a, b, op_b, combine in self.blocks(arch, cell):
                pairs = sorted([(a, self.ops_vocabulary.index(op_a)), (b, self.ops_vocabulary.index(op_b))])
                text = ",".join(f"{i}:{o}" for i, o in pairs)
                blocks.append(text + (f",{COMBINE.index(combine)}" if self.search_combine else ""))
            parts.append("/".join(blocks))
        return f"{self.name}:" + "|".join(parts)

    def describe(self, arch: Architecture) -> JSONDict:
        out: JSONDict = {}
        for cell in CELLS:
            out[cell] = [{"inputs": [a, b], "ops": [op_a, op_b], "combine": combine}
                         for a, op_a, b, op_b, combine in self.blocks(arch, cell)]
            out[f"{cell}_concat"] = self.concat(arch, cell)
        return out

    def summary(self, arch: Architecture) -> str:
        cells = []
        for cell in CELLS:
            blocks = []
            for a, op_a, b, op_b, combine in self.blocks(arch, cell):
                sign = "+" if combine == "add" else "&"
                blocks.append(f"{_SHORT.get(op_a, op_a)}({a}){sign}{_SHORT.get(op_b, op_b)}({b})")
            cells.append(f"{cell}: " + " ".join(blocks))
        return " | ".join(cells)

    # ---- JSON ------------------------------------------------------------------------
    def parse(self, description: JSONDict) -> Architecture:
        tokens: list[int] = []
        for cell in CELLS:
            blocks = description.get(cell)
            if not isinstance(blocks, list) or len(blocks) != self.num_blocks:
                raise InvalidArchitecture(f"{self.name}: description needs {cell!r}, a list of "
                                          f"{self.num_blocks} blocks")
            for block in blocks:
                tokens += self._block_tokens(block)
        return self.assemble(tokens)

    def _block_tokens(self, block: Any) -> list[int]:
        try:
            (a, b), (op_a, op_b) = block["inputs"], block["ops"]
            out = [int(a), int(b), self.ops_vocabulary.index(op_a), self.ops_vocabulary.index(op_b)]
            if self.search_combine:
                out.append(COMBINE.index(block.get("combine", "add")))
            return out
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidArchitecture(f"{self.name}: bad block {block!r}: {exc}") from exc

    # ---- PyTorch ---------------------------------------------------------------------
    def plan(self) -> list[bool]:
        """Cell kinds in network order: True for a reduction cell."""
        raise NotImplementedError

    def build(self, arch: Architecture, data: DataSpec) -> torch.nn.Module:
        from nasforge.models.networks import CellNetwork, image_shape

        channels, _, _ = image_shape(data.input_shape, self.name)
        return CellNetwork(self.genotype(arch, "normal"), self.genotype(arch, "reduce"), self.plan(), channels,
                           int(data.num_outputs), self.channels)


class NASNetSpace(CellSpace):
    """NASNet's 13 ops and add/concat combinations; network: three stages of `cells_per_stage` normal
    cells with a reduction cell between stages."""

    name = "nasnet"
    ops_vocabulary = NASNET_OPS
    # NASNet's CIFAR training: ScheduledDropPath to keep probability 0.6, auxiliary head weighted 0.4
    final_training: ClassVar[JSONDict] = {"drop_path": 0.4, "auxiliary_weight": 0.4}
    search_combine = True

    def __init__(self, num_blocks: int = 5, cells_per_stage: int = 2, channels: int = 16,
                 ops: Sequence[str] | None = None) -> None:
        if int(cells_per_stage) < 1:
            raise ConfigError(f"nasnet: cells_per_stage must be >= 1, got {cells_per_stage}")
        self.cells_per_stage = int(cells_per_stage)
        super().__init__(num_blocks, channels, ops)

    def config(self) -> JSONDict:
        return {"num_blocks": self.num_blocks, "cells_per_stage": self.cells_per_stage, "channels": self.channels,
                "ops": self.ops}

    def plan(self) -> list[bool]:
        normal = [False] * self.cells_per_stage
        return [*normal, True, *normal, True, *normal]
