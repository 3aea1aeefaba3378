"""What every CNN supernet shares: the mixed op of an edge and the `Supernet` interface the one-shot
methods program against (`nasforge.oneshot.supernet` builds the concrete ones)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nasforge.core.types import Architecture
from nasforge.data.base import DataSpec
from nasforge.models.networks import as_images
from nasforge.models.ops import make_op
from nasforge.oneshot.mixture import SourceCache, weighted_term

ALPHA_INIT_SCALE = 1e-3  # the DARTS code's initial α: near-uniform softmax, symmetry broken


class MixedOp(nn.Module):
    """All candidate ops of one edge; `forward` mixes them, `single` runs one."""

    def __init__(self, names: tuple[str, ...], c_in: int, c_out: int, stride: int, affine: bool) -> None:
        super().__init__()
        self.names = names
        self.candidates = nn.ModuleList(make_op(name, c_in, c_out, stride, affine) for name in names)
        self._none = names.index("none") if "none" in names else -1

    def forward(self, x: torch.Tensor, weights: torch.Tensor, cache: SourceCache | None = None) -> torch.Tensor:
        """`sum_k weights[k] * op_k(x)`, computed as `nasforge.oneshot.mixture` describes; `cache` shares
        work with the other edges leaving `x`. `none` adds exactly zero, so it is not computed (α still
        sees it through the softmax's normalisation)."""
        cache = SourceCache() if cache is None else cache
        total: torch.Tensor | None = None
        for k, op in enumerate(self.candidates):
            if k != self._none:
                total = weighted_term(op, x, weights[k], cache, total)
        if total is None:  # an edge whose only candidate is `none`
            return weights[self._none] * self.candidates[self._none](x)
        return total

    def single(self, x: torch.Tensor, column: int) -> torch.Tensor:
        return self.candidates[column](x)  # type: ignore[no-any-return]


def stack_cells(make_cell: Callable[..., nn.Module], plan: list[bool], in_channels: int, channels: int,
                stem_multiplier: int) -> tuple[nn.Sequential, nn.ModuleList, int]:
    """The stem and the cells of a cell supernet (a reduction cell doubles the width), as the final
    `CellNetwork` stacks them; `make_cell(c_pp, c_p, c, reduction, reduction_prev)`. Returns the last
    cell's output width with them."""
    c_stem = int(stem_multiplier) * int(channels)
    stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
    c_pp, c_p, c = c_stem, c_stem, int(channels)
    cells = []
    reduction_prev = False
    for reduction in plan:
        if reduction:
            c *= 2
        cell = make_cell(c_pp, c_p, c, reduction, reduction_prev)
        cells.append(cell)
        c_pp, c_p = c_p, int(cell.out_channels)  # type: ignore[arg-type]
        reduction_prev = reduction
    return stem, nn.ModuleList(cells), c_p


def _mixed(module: nn.Module) -> MixedOp:
    """A ModuleList entry typed as the MixedOp it is."""
    assert isinstance(module, MixedOp)
    return module


def _is_reduction(cell: nn.Module) -> int:
    return int(bool(getattr(cell, "reduction", False)))


def _softmax_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each row's softmax."""
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def _new_alpha(rows: int, cols: int) -> nn.Parameter:
    return nn.Parameter(ALPHA_INIT_SCALE * torch.randn(rows, cols))


class Supernet(nn.Module):
    """Common interface; subclasses define the graph, `forward`, `derive` and `arch_weights`."""

    space: Any
    spec: DataSpec
    channels_last = False

    def set_channels_last(self, enabled: bool) -> None:
        """Channels-last weights and activations, the layout the train evaluator also uses by default
        (its effect on training: bench/results/train_speed.md). The supernet bench measures the whole
        step, not this part alone."""
        self.channels_last = bool(enabled)
        self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)  # type: ignore[call-overload]

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """The input batch as (N, C, H, W) in this supernet's memory layout."""
        x = as_images(x)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def arch_parameters(self) -> list[nn.Parameter]:
        """α tensors, one per cell type / edge set (rows: edges, columns: candidate ops)."""
        return list(self.alphas)

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not α (the ops, stems, classifiers)."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def arch_weights(self) -> dict[str, torch.Tensor]:
        """α as the mixture sees it (softmax per edge; sigmoid for ENAS skips), named, detached."""
        raise NotImplementedError

    def softmax_alphas(self) -> list[torch.Tensor]:
        """The α tensors whose rows are softmaxed (what `alpha_entropy` averages over)."""
        return [a for a in self.arch_parameters()]

    def alpha_entropy(self) -> float:
        """Mean entropy of the per-edge softmaxes: log(#ops) at the start, falls as edges commit."""
        with torch.no_grad():
            rows = torch.cat([_softmax_entropy(a.detach().float()) for a in self.softmax_alphas()])
        return float(rows.mean()) if rows.numel() else 0.0

    def derive(self) -> Architecture:
        raise NotImplementedError

    def op_columns(self) -> dict[str, int]:
        return {}

    alphas: nn.ParameterList
