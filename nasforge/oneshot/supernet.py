"""Weight-sharing supernets for the `darts`, `nb201` and `enas_macro` spaces (`nasnet`'s is in
`nasforge.oneshot.nasnet_supernet`; their shared parts in `nasforge.oneshot.supernet_base`).

Every candidate op of every edge exists once (built from the shared op table, `nasforge.models.ops`),
so every sub-graph of the space is a selection of these modules and they share weights. Two forward
passes serve the one-shot methods:

- `forward(x, arch)`: only the ops `arch` chooses run (one path; ENAS, and scoring a derived cell);
- `forward(x)`: every edge is the softmax(α)-weighted sum of its candidate ops (DARTS's relaxation).

`derive()` turns α back into an architecture of the space (for `darts` the paper's rule: per node the
two incoming edges with the strongest non-`none` op, each with its argmax non-`none` op).

Defaults are small so a search runs on a CPU (the DARTS paper searches with 8 cells of 16 channels):

| space | options (default) |
|---|---|
| darts | `layers` (5; reduction cells at 1/3 and 2/3), `channels` (8), `stem_multiplier` (3), `affine` (False) |
| nb201 | `cells_per_stage` (1), `channels` (8), `affine` (False) |
| enas_macro | `channels` (8), `affine` (False); the layer count is the space's, since tokens depend on it |
| nasnet | `cells_per_stage` (1), `channels` (8), `stem_multiplier` (3), `affine` (False) |

Every supernet also takes `channels_last` (True): weights and activations in channels-last layout.

`affine=False` keeps batch norm without learned scale and shift inside the ops, as the DARTS search does,
so an op's weight α cannot be undone by a BN scale.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture
from nasforge.data.base import DataSpec
from nasforge.models.nb201_net import ResidualReduction
from nasforge.models.networks import Classifier, enas_reduction_layers, image_shape
from nasforge.models.ops import FactorizedReduce, ReLUConvBN
from nasforge.oneshot.mixture import SourceCache
from nasforge.oneshot.nasnet_supernet import NASNetSupernet
from nasforge.oneshot.supernet_base import MixedOp, Supernet, _is_reduction, _mixed, _new_alpha, stack_cells
from nasforge.spaces.darts import DARTS_OPS
from nasforge.spaces.enas_macro import ENAS_OPS
from nasforge.spaces.nasnet import CELLS
from nasforge.spaces.nb201 import EDGES, NODES
from nasforge.spaces.nb201 import OPS as NB201_OPS

__all__ = ["SUPERNET_SPACES", "DARTSSearchCell", "DARTSSupernet", "ENASMacroSupernet", "MixedOp",
           "NASNetSupernet", "NB201SearchCell", "NB201Supernet", "Supernet", "build_supernet"]

SUPERNET_SPACES = ("darts", "nasnet", "nb201", "enas_macro")


# ---- DARTS ---------------------------------------------------------------------------------------
def darts_reduction_plan(layers: int) -> list[bool]:
    """Reduction cells at 1/3 and 2/3 of the depth, the rule of `DARTSSpace.plan`."""
    reductions = {layers // 3, 2 * layers // 3} if layers >= 3 else set()
    return [i in reductions for i in range(layers)]


class DARTSSearchCell(nn.Module):
    """A DARTS cell with a mixed op on every edge (node i reads both cell inputs and nodes < i)."""

    def __init__(self, names: tuple[str, ...], num_nodes: int, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool, affine: bool) -> None:
        super().__init__()
        self.num_nodes = num_nodes
        self.reduction = reduction
        self.pre0: nn.Module = (FactorizedReduce(c_pp, c, affine) if reduction_prev
                                else ReLUConvBN(c_pp, c, 1, affine=affine))
        self.pre1 = ReLUConvBN(c_p, c, 1, affine=affine)
        edges = []
        for i in range(num_nodes):
            for j in range(i + 2):
                edges.append(MixedOp(names, c, c, 2 if reduction and j < 2 else 1, affine))
        self.edges = nn.ModuleList(edges)
        self.out_channels = num_nodes * c

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor | None = None,
                blocks: list[tuple[int, int, int, int]] | None = None) -> torch.Tensor:
        """Mixture with `weights` (edges x ops), or one path: per node `(input_a, input_b, column_a, column_b)`."""
        states = [self.pre0(s0), self.pre1(s1)]
        cache = SourceCache()
        offset = 0
        for i in range(self.num_nodes):
            if blocks is None:
                assert weights is not None
                node = self.edges[offset](states[0], weights[offset], cache)
                for j in range(1, len(states)):
                    node = node + self.edges[offset + j](states[j], weights[offset + j], cache)
            else:
                a, b, col_a, col_b = blocks[i]
                node = _mixed(self.edges[offset + a]).single(states[a], col_a) + \
                    _mixed(self.edges[offset + b]).single(states[b], col_b)
            offset += len(states)
            states.append(node)
        return torch.cat(states[2:], dim=1)


class DARTSSupernet(Supernet):
    """The DARTS search network: stem, `layers` search cells, pool, linear; α for normal and reduce cells."""

    def __init__(self, space: Any, spec: DataSpec, layers: int = 5, channels: int = 8, stem_multiplier: int = 3,
                 affine: bool = False) -> None:
        super().__init__()
        if int(layers) < 1 or int(channels) < 1 or int(stem_multiplier) < 1:
            raise ConfigError("darts supernet: layers, channels and stem_multiplier must be positive")
        self.space, self.spec = space, spec
        allowed = space.ops if space.ops is not None else [o for o in DARTS_OPS if o != "none"]
        self.names: tuple[str, ...] = ("none", *(o for o in DARTS_OPS if o in allowed and o != "none"))
        self.num_nodes = int(space.num_blocks)
        self.plan = darts_reduction_plan(int(layers))
        in_channels, _, _ = image_shape(spec.input_shape, "darts")
        self.stem, self.cells, c_p = stack_cells(
            lambda c_pp, c_p, c, red, red_prev: DARTSSearchCell(self.names, self.num_nodes, c_pp, c_p, c, red,
                                                                red_prev, affine),
            self.plan, in_channels, int(channels), int(stem_multiplier))
        self.classifier = Classifier(c_p, int(spec.num_outputs))
        num_edges = sum(i + 2 for i in range(self.num_nodes))
        self.alphas = nn.ParameterList([_new_alpha(num_edges, len(self.names)) for _ in CELLS])

    def op_columns(self) -> dict[str, int]:
        return {name: k for k, name in enumerate(self.names)}

    def mixed_edges(self) -> list[tuple[int, int, MixedOp]]:
        """(α index, α row, edge) of every mixed edge: cell edge e is row e of its cell type's α."""
        return [(_is_reduction(cell), e, _mixed(edge)) for cell in self.cells
                for e, edge in enumerate(cell.edges)]  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor, arch: Architecture | None = None) -> torch.Tensor:
        s0 = s1 = self.stem(self.images(x))
        if arch is None:
            weights = [torch.softmax(a, dim=-1) for a in self.alphas]
            for cell in self.cells:
                s0, s1 = s1, cell(s0, s1, weights=weights[_is_reduction(cell)])
        else:
            paths = [self._path(arch, name) for name in CELLS]
            for cell in self.cells:
                s0, s1 = s1, cell(s0, s1, blocks=paths[_is_reduction(cell)])
        return self.classifier(s1)  # type: ignore[no-any-return]

    def _path(self, arch: Architecture, cell: str) -> list[tuple[int, int, int, int]]:
        columns = self.op_columns()
        try:
            return [(a, b, columns[op_a], columns[op_b]) for a, op_a, b, op_b, _ in self.space.blocks(arch, cell)]
        except KeyError as exc:
            raise ValueError(f"darts supernet: op {exc} is not a candidate of this supernet") from exc

    def arch_weights(self) -> dict[str, torch.Tensor]:
        return {cell: torch.softmax(a.detach(), dim=-1) for cell, a in zip(CELLS, self.alphas)}

    def derive(self) -> Architecture:
        weights = self.arch_weights()
        genotype: dict[str, Any] = {cell: self._derive_cell(weights[cell]) for cell in CELLS}
        return self.space.parse(genotype)  # type: ignore[no-any-return]

    def _derive_cell(self, weights: torch.Tensor) -> list[list[Any]]:
        """Per node, the two incoming edges whose strongest non-`none` op is largest, each with that op."""
        real = [k for k, name in enumerate(self.names) if name != "none"]
        pairs: list[list[Any]] = []
        offset = 0
        for i in range(self.num_nodes):
            candidates = []
            for j in range(i + 2):
                row = weights[offset + j]
                best = max(real, key=lambda k: float(row[k]))
                candidates.append((float(row[best]), j, best))
            offset += i + 2
            for _, j, best in sorted(candidates, key=lambda c: -c[0])[:2]:
                pairs.append([self.names[best], j])
        return pairs


# ---- NAS-Bench-201 -------------------------------------------------------------------------------
class NB201SearchCell(nn.Module):
    """The 4-node NAS-Bench-201 cell with a mixed op on each of its 6 edges."""

    def __init__(self, channels: int, affine: bool) -> None:
        super().__init__()
        self.edges = nn.ModuleList(MixedOp(NB201_OPS, channels, channels, 1, affine) for _ in EDGES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None,
                tokens: tuple[int, ...] | None = None) -> torch.Tensor:
        nodes = [x]
        cache = SourceCache()
        k = 0
        for node in range(1, NODES):
            total: torch.Tensor | None = None
            for j in range(node):
                edge = self.edges[k + j]
                if tokens is not None:
                    out = _mixed(edge).single(nodes[j], tokens[k + j])
                else:
                    assert weights is not None
                    out = edge(nodes[j], weights[k + j], cache)
                total = out if total is None else total + out
            assert total is not None
            k += node
            nodes.append(total)
        return nodes[-1]


class NB201Supernet(Supernet):
    """NAS-Bench-201's skeleton (stem, 3 stages, residual reductions) with search cells sharing one α."""

    def __init__(self, space: Any, spec: DataSpec, cells_per_stage: int = 1, channels: int = 8,
                 affine: bool = False) -> None:
        super().__init__()
        if int(cells_per_stage) < 1 or int(channels) < 1:
            raise ConfigError("nb201 supernet: cells_per_stage and channels must be positive")
        self.space, self.spec = space, spec
        in_channels, _, _ = image_shape(spec.input_shape, "nb201")
        c = int(channels)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers: list[nn.Module] = []
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers.extend(NB201SearchCell(c, affine) for _ in range(int(cells_per_stage)))
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.classifier = Classifier(c, int(spec.num_outputs))
        self.alphas = nn.ParameterList([_new_alpha(len(EDGES), len(NB201_OPS))])

    def op_columns(self) -> dict[str, int]:
        return {name: k for k, name in enumerate(NB201_OPS)}

    def mixed_edges(self) -> list[tuple[int, int, MixedOp]]:
        """(α index, α row, edge): every cell's edge e is row e of the one α."""
        return [(0, e, _mixed(edge)) for layer in self.layers if isinstance(layer, NB201SearchCell)
                for e, edge in enumerate(layer.edges)]

    def forward(self, x: torch.Tensor, arch: Architecture | None = None) -> torch.Tensor:
        h = self.stem(self.images(x))
        weights = torch.softmax(self.alphas[0], dim=-1) if arch is None else None
        tokens = None if arch is None else self.space.assemble(arch.tokens).tokens
        for layer in self.layers:
            h = layer(h, weights, tokens) if isinstance(layer, NB201SearchCell) else layer(h)
        return self.classifier(self.head(h))  # type: ignore[no-any-return]

    def arch_weights(self) -> dict[str, torch.Tensor]:
        return {"cell": torch.softmax(self.alphas[0].detach(), dim=-1)}

    def derive(self) -> Architecture:
        """Every edge kept with its argmax op, `none` included (NAS-Bench-201's DARTS rule)."""
        tokens = self.arch_weights()["cell"].argmax(dim=-1).tolist()
        return self.space.assemble(tokens)  # type: ignore[no-any-return]


# ---- ENAS macro ----------------------------------------------------------------------------------
class ENASMacroSupernet(Supernet):
    """ENAS's macro network with all 6 ops in every layer and every possible skip.

    One path: layer k runs its chosen op on layer k-1 and adds its chosen skips (batch norm when it
    has any), and at a reduction only the outputs read later are reduced, as `ENASMacroNetwork`
    does. Mixture (an extension; ENAS itself only samples): softmax over ops per layer, and each skip
    j -> k weighted by sigmoid(α_skip[k, j]); `derive` keeps skips above 1/2.
    """

    def __init__(self, space: Any, spec: DataSpec, channels: int = 8, affine: bool = False,
                 layers: int | None = None) -> None:
        super().__init__()
        if layers is not None and int(layers) != space.num_layers:
            raise ConfigError(f"enas_macro supernet: layers must equal the space's num_layers ({space.num_layers}),"
                              " since an architecture has one op per layer")
        if int(channels) < 1:
            raise ConfigError("enas_macro supernet: channels must be positive")
        self.space, self.spec = space, spec
        self.num_layers = int(space.num_layers)
        in_channels, _, _ = image_shape(spec.input_shape, "enas_macro")
        c = int(channels)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.reductions = enas_reduction_layers(self.num_layers)
        layer_ops, norms, reduce = [], [], {}
        for k in range(self.num_layers):
            layer_ops.append(MixedOp(ENAS_OPS, c, c, 1, affine))
            norms.append(nn.BatchNorm2d(c, affine=affine))
            if k in self.reductions:
                for j in range(k + 1):
                    reduce[f"{k}_{j}"] = FactorizedReduce(c, 2 * c, affine)
                c *= 2
        self.layer_ops = nn.ModuleList(layer_ops)
        self.norms = nn.ModuleList(norms)
        self.reduce = nn.ModuleDict(reduce)
        self.classifier = nn.Sequential(nn.ReLU(inplace=False), Classifier(c, int(spec.num_outputs)))
        self.alphas = nn.ParameterList([_new_alpha(self.num_layers, len(ENAS_OPS)),
                                        _new_alpha(self.num_layers, self.num_layers)])

    def op_columns(self) -> dict[str, int]:
        return {name: k for k, name in enumerate(ENAS_OPS)}

    def mixed_edges(self) -> list[tuple[int, int, MixedOp]]:
        """(α index, α row, layer op): layer k's op is row k of the op α (skips cost nothing to choose)."""
        return [(0, k, _mixed(op)) for k, op in enumerate(self.layer_ops)]

    def softmax_alphas(self) -> list[torch.Tensor]:
        return [self.alphas[0]]

    def forward(self, x: torch.Tensor, arch: Architecture | None = None) -> torch.Tensor:
        prev = self.stem(self.images(x))
        if arch is None:
            return self._mixture(prev)
        layers = self.space.layers(arch)
        columns = self.op_columns()
        outs: list[torch.Tensor] = []
        for k, layer in enumerate(layers):
            out = _mixed(self.layer_ops[k]).single(prev, columns[layer["op"]])
            for j in layer["skips"]:
                out = out + outs[j]
            outs.append(self.norms[k](out) if layer["skips"] else out)
            if k in self.reductions:
                read_later = {j for later in layers[k + 1:] for j in later["skips"]} | {k}
                outs = [self.reduce[f"{k}_{j}"](o) if j in read_later else o for j, o in enumerate(outs)]
            prev = outs[-1]
        return self.classifier(prev)  # type: ignore[no-any-return]

    def _mixture(self, prev: torch.Tensor) -> torch.Tensor:
        op_weights = torch.softmax(self.alphas[0], dim=-1)
        skip_weights = torch.sigmoid(self.alphas[1])
        outs: list[torch.Tensor] = []
        for k in range(self.num_layers):
            out = self.layer_ops[k](prev, op_weights[k])
            for j in range(k):
                out = out + skip_weights[k, j] * outs[j]
            outs.append(self.norms[k](out) if k > 0 else out)
            if k in self.reductions:
                outs = [self.reduce[f"{k}_{j}"](o) for j, o in enumerate(outs)]
            prev = outs[-1]
        return self.classifier(prev)  # type: ignore[no-any-return]

    def arch_weights(self) -> dict[str, torch.Tensor]:
        skips = torch.sigmoid(self.alphas[1].detach()).tril(diagonal=-1)
        return {"ops": torch.softmax(self.alphas[0].detach(), dim=-1), "skips": skips}

    def derive(self) -> Architecture:
        weights = self.arch_weights()
        ops = weights["ops"].argmax(dim=-1).tolist()
        tokens: list[int] = []
        for k in range(self.num_layers):
            tokens += [int(ops[k]), *(int(float(weights["skips"][k, j]) > 0.5) for j in range(k))]
        return self.space.assemble(tokens)  # type: ignore[no-any-return]


# ---- factory -------------------------------------------------------------------------------------
_BUILDERS: dict[str, type[Supernet]] = {"darts": DARTSSupernet, "nasnet": NASNetSupernet, "nb201": NB201Supernet,
                                        "enas_macro": ENASMacroSupernet}


def build_supernet(space: Any, spec: DataSpec, channels_last: bool = True, **options: Any) -> Supernet:
    """The supernet of `space` for data `spec`; options as in the module docstring (unknown ones refused)."""
    name = getattr(space, "name", None)
    if name not in _BUILDERS:
        raise ConfigError(f"no supernet for space {name!r}; one-shot search supports: {', '.join(SUPERNET_SPACES)}")
    builder = _BUILDERS[name]
    try:
        inspect.signature(builder).bind(space, spec, **options)
    except TypeError as exc:
        raise ConfigError(f"{name} supernet: bad options {sorted(options)}: {exc}") from exc
    net = builder(space, spec, **options)
    net.set_channels_last(bool(channels_last))
    return net
