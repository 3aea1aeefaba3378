"""Dense (fully connected) blocks modelled on Model Search's `dnn` blocks, and the network they form.

Every block takes the previous width and a `LayerStyle` (activation, normalization, dropout
shared by the whole network, as Model Search searches them once per model) and exposes
`out_features`, so blocks of any width chain without the space knowing layer sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from nasforge.models.user_blocks import UserBlock, build_user_block

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "silu": nn.SiLU,
}
NORMALIZATIONS = ("none", "batch", "layer")


@dataclass(frozen=True)
class LayerStyle:
    """The per-network choices every block applies after each of its linear maps."""

    activation: str = "relu"
    normalization: str = "none"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of: {', '.join(ACTIVATIONS)}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {self.normalization!r}; "
                             f"choose one of: {', '.join(NORMALIZATIONS)}")

    @property
    def bias(self) -> bool:
        """Batch norm subtracts the mean, so a bias before it is wasted parameters."""
        return self.normalization != "batch"

    def norm(self, width: int) -> nn.Module:
        if self.normalization == "batch":
            return nn.BatchNorm1d(width)
        if self.normalization == "layer":
            return nn.LayerNorm(width)
        return nn.Identity()

    def act(self) -> nn.Module:
        return ACTIVATIONS[self.activation]()

    def drop(self) -> nn.Module:
        return nn.Dropout(self.dropout) if self.dropout > 0 else nn.Identity()

    def layer(self, in_features: int, out_features: int) -> nn.Sequential:
        """linear -> norm -> activation: the unit every block is made of."""
        return nn.Sequential(nn.Linear(in_features, out_features, bias=self.bias), self.norm(out_features),
                             self.act())


class Block(nn.Module):
    """A dense block; `out_features` lets the next block size its input."""

    out_features: int


class IdentityBlock(Block):
    """No-op, so a fixed-depth token sequence can still express shallower networks."""

    def __init__(self, in_features: int, style: LayerStyle) -> None:
        super().__init__()
        self.out_features = in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class FullyConnected(Block):
    """One hidden layer of a fixed width."""

    def __init__(self, in_features: int, style: LayerStyle, width: int) -> None:
        super().__init__()
        self.out_features = width
        self.body = style.layer(in_features, width)
        self.drop = style.drop()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.body(x))


class ResidualFC(Block):
    """Two layers with a skip; a bias-free projection on the skip when the widths differ."""

    def __init__(self, in_features: int, style: LayerStyle, width: int) -> None:
        super().__init__()
        self.out_features = width
        self.first = style.layer(in_features, width)
        self.second = nn.Linear(width, width, bias=style.bias)
        self.norm = style.norm(width)
        self.skip: nn.Module = (nn.Identity() if in_features == width
                                else nn.Linear(in_features, width, bias=False))
        self.act = style.act()
        self.drop = style.drop()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.second(self.first(x)))
        return self.drop(self.act(h + self.skip(x)))


class LowRank(Block):
    """A width-`width` layer whose weight is factorised as U·V of rank `rank`: few parameters, wide output."""

    def __init__(self, in_features: int, style: LayerStyle, width: int, rank: int) -> None:
        super().__init__()
        self.out_features = width
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = style.layer(rank, width)
        self.drop = style.drop()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.up(self.down(x)))


class Bottleneck(Block):
    """wide -> narrow -> wide: squeezes the representation through `narrow` units."""

    def __init__(self, in_features: int, style: LayerStyle, wide: int, narrow: int) -> None:
        super().__init__()
        self.out_features = wide
        self.body = nn.Sequential(style.layer(in_features, wide), style.layer(wide, narrow),
                                  style.layer(narrow, wide))
        self.drop = style.drop()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.body(x))


BlockFactory = Callable[[int, LayerStyle], Block]

# Name -> constructor. DNNSpace keeps the token order of these names (torch-free); a test keeps the two in step.
BLOCKS: dict[str, BlockFactory] = {
    "identity": IdentityBlock,
    **{f"fc_{w}": partial(FullyConnected, width=w) for w in (64, 128, 256, 512, 1024)},
    **{f"res_fc_{w}": partial(ResidualFC, width=w) for w in (64, 128, 256, 512)},
    **{f"lowrank_{w}_r{r}": partial(LowRank, width=w, rank=r) for w, r in ((256, 16), (512, 32), (1024, 32))},
    **{f"bottleneck_{w}_{n}": partial(Bottleneck, wide=w, narrow=n)
       for w, n in ((256, 64), (512, 128), (1024, 128))},
}
BLOCK_NAMES: tuple[str, ...] = tuple(BLOCKS)


def chain_blocks(input_dim: int, blocks: Sequence[str], style: LayerStyle) -> tuple[nn.Sequential, int]:
    """The named blocks, each sized by the one before; returns them and the last width. A name that is not
    built in is a user block (a registered name or an import path: nasforge.models.user_blocks)."""
    layers: list[nn.Module] = []
    width = input_dim
    for name in blocks:
        if name in BLOCKS:
            block: Block | UserBlock = BLOCKS[name](width, style)
        else:
            block = build_user_block(name, (width,), "dnn", style)
        layers.append(block)
        width = block.out_features
    return nn.Sequential(*layers), width


class DenseNetwork(nn.Module):
    """flatten -> blocks -> linear head (logits for classification, values for regression)."""

    def __init__(self, input_dim: int, blocks: Sequence[str], num_outputs: int, style: LayerStyle) -> None:
        super().__init__()
        self.blocks, width = chain_blocks(input_dim, blocks, style)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x.flatten(1)))
