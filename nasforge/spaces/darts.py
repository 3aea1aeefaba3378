"""The DARTS cell space (Liu et al., 2019) as discrete genotypes.

Normal and reduction cells of 4 intermediate nodes; each node adds two ops applied to two
different earlier states (the two cell inputs or earlier nodes), and the cell outputs all
nodes concatenated. Per node the tokens are input_a, input_b, op_a, op_b.

`none` stays in the op vocabulary, so the supernet (which mixes all 8 ops on every edge)
and the controllers share token names with this space, but it is masked out: DARTS never
derives `none` into a final cell. The network stacks `layers` cells with reduction cells at
1/3 and 2/3 of the depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture, JSONDict
from nasforge.spaces.base import InvalidArchitecture
from nasforge.spaces.nasnet import CELLS, CellSpace

DARTS_OPS: tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                              "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")


class DARTSSpace(CellSpace):
    """DARTS genotypes; `describe()` is the genotype form (`[[op, input], ...]` per cell), which `from_json` reads."""

    name = "darts"
    ops_vocabulary = DARTS_OPS
    # DARTS's evaluation training (train.py): drop_path_prob 0.2, auxiliary_weight 0.4
    final_training: ClassVar[JSONDict] = {"drop_path": 0.2, "auxiliary_weight": 0.4}
    search_combine = False
    distinct_inputs = True
    output_all = True
    default_excluded = ("none",)

    def __init__(self, num_nodes: int = 4, layers: int = 8, channels: int = 16,
                 ops: Sequence[str] | None = None) -> None:
        if int(layers) < 1:
            raise ConfigError(f"darts: layers must be >= 1, got {layers}")
        if ops is not None and "none" in ops:
            raise ConfigError("darts: 'none' cannot be chosen in a derived cell")
        self.layers = int(layers)
        super().__init__(num_nodes, channels, ops)

    def config(self) -> JSONDict:
        return {"num_nodes": self.num_blocks, "layers": self.layers, "channels": self.channels, "ops": self.ops}

    def plan(self) -> list[bool]:
        reductions = {self.layers // 3, 2 * self.layers // 3} if self.layers >= 3 else set()
        return [i in reductions for i in range(self.layers)]

    def describe(self, arch: Architecture) -> JSONDict:
        out: JSONDict = {}
        for cell in CELLS:
            edges: list[list[Any]] = []
            for a, op_a, b, op_b, _ in self.blocks(arch, cell):
                edges += [[op_a, a], [op_b, b]]
            out[cell] = edges
            out[f"{cell}_concat"] = self.concat(arch, cell)
        return out

    def parse(self, description: JSONDict) -> Architecture:
        """Tokens from a genotype: for each cell, 2 * num_nodes `[op, input]` pairs."""
        tokens: list[int] = []
        for cell in CELLS:
            edges = description.get(cell)
            if not isinstance(edges, list) or len(edges) != 2 * self.num_blocks:
                raise InvalidArchitecture(f"darts: genotype needs {cell!r}, a list of {2 * self.num_blocks} "
                                          "[op, input] pairs")
            if edges and isinstance(edges[0], dict):  # NASNet's block form, not a genotype
                raise InvalidArchitecture("darts: expected [op, input] pairs, got blocks")
            for k in range(self.num_blocks):
                try:
                    (op_a, a), (op_b, b) = edges[2 * k], edges[2 * k + 1]
                    tokens += [int(a), int(b), DARTS_OPS.index(op_a), DARTS_OPS.index(op_b)]
                except (ValueError, TypeError) as exc:
                    raise InvalidArchitecture(f"darts: bad genotype edge in {cell}: {exc}") from exc
        return self.assemble(tokens)
