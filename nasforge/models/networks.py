"""Image classifiers the seed papers' spaces describe, built from `ops.OPS` and `cells.Cell`.

Each network takes `(N, C, H, W)` images (or `(N, H, W)` grey ones) and returns `(N, classes)`
logits. Spaces turn tokens into the plain descriptions these constructors take, so the
networks know nothing about tokens and can be built by hand from a paper's figure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.models.cells import BlockSpec, Cell
from nasforge.models.dense import BLOCKS as DENSE_BLOCKS
from nasforge.models.dense import LayerStyle
from nasforge.models.ops import FactorizedConv, FactorizedReduce, make_op
from nasforge.models.tricks import AuxiliaryHead
from nasforge.models.user_blocks import build_user_block


def image_shape(input_shape: Sequence[int], space: str) -> tuple[int, int, int]:
    """(channels, height, width) from a data spec's channels-first shape; (H, W) means one channel."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    raise ValueError(f"{space}: needs image input (C, H, W) or (H, W), got input_shape {shape}")


def as_images(x: torch.Tensor) -> torch.Tensor:
    return x.unsqueeze(1) if x.dim() == 3 else x


def conv_bn_relu(c_in: int, c_out: int, kernel: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1) -> nn.Sequential:
    """Post-activation conv, the layer of the early layer-by-layer searches (NAS-RL, MetaQNN)."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return nn.Sequential(nn.Conv2d(c_in, c_out, (kh, kw), stride=stride, padding=(kh // 2, kw // 2), bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=False))


def pad_concat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate along channels after zero-padding every map to the largest height and width."""
    if len(tensors) == 1:
        return tensors[0]
    h = max(t.shape[2] for t in tensors)
    w = max(t.shape[3] for t in tensors)
    padded = []
    for t in tensors:
        dh, dw = h - t.shape[2], w - t.shape[3]
        padded.append(F.pad(t, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)) if dh or dw else t)
    return torch.cat(padded, dim=1)


class Classifier(nn.Module):
    """Global average pool and a linear layer: every conv network here ends this way."""

    def __init__(self, channels: int, num_outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(channels, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---- NASNet / DARTS: stacks of cells --------------------------------------------------------
@dataclass(frozen=True)
class CellGenotype:
    """A cell as data: its blocks and which states form its output."""

    blocks: tuple[BlockSpec, ...]
    concat: tuple[int, ...]


class CellNetwork(nn.Module):
    """Stem, then cells (`plan[i]` True for a reduction cell, which doubles the width), pool, linear.

    Final training may switch on scheduled drop-path (`set_drop_path`) and an auxiliary head after the
    last reduction cell (`add_auxiliary_head`), as NASNet and DARTS train their found cells; see
    `nasforge.models.tricks`. Both are off unless the training loop asks for them.
    """

    def __init__(self, normal: CellGenotype, reduce: CellGenotype, plan: Sequence[bool], in_channels: int,
                 num_outputs: int, channels: int = 16, stem_multiplier: int = 3) -> None:
        super().__init__()
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_pp, c_p, c = c_stem, c_stem, channels
        cells: list[Cell] = []
        reduction_prev = False
        for reduction in plan:
            if reduction:
                c *= 2
            genotype = reduce if reduction else normal
            cell = Cell(genotype.blocks, genotype.concat, c_pp, c_p, c, reduction, reduction_prev)
            cells.append(cell)
            c_pp, c_p = c_p, cell.out_channels
            reduction_prev = reduction
        self.cells = nn.ModuleList(cells)
        self.classifier = Classifier(c_p, num_outputs)
        self.num_outputs = int(num_outputs)
        # the papers put the auxiliary head after the second reduction (2/3 of the depth)
        reductions = [i for i, r in enumerate(plan) if r]
        self.auxiliary_at = reductions[-1] if reductions else max(0, (2 * len(cells)) // 3 - 1)
        self.auxiliary: AuxiliaryHead | None = None
        self.auxiliary_logits: torch.Tensor | None = None

    def set_drop_path(self, prob: float) -> None:
        for cell in self.cells:
            cell.drop_prob = float(prob)  # type: ignore[assignment]

    def add_auxiliary_head(self) -> None:
        if self.auxiliary is None:
            channels = int(self.cells[self.auxiliary_at].out_channels)  # type: ignore[arg-type]
            self.auxiliary = AuxiliaryHead(channels, self.num_outputs).to(self.classifier.linear.weight.device)

    def remove_auxiliary(self) -> None:
        self.auxiliary = None
        self.auxiliary_logits = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(as_images(x))
        self.auxiliary_logits = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.auxiliary_at and self.auxiliary is not None and self.training:
                self.auxiliary_logits = self.auxiliary(s1)
        return self.classifier(s1)


# ---- NAS-RL: a chain of conv layers with anchor skips ---------------------------------------------
@dataclass(frozen=True)
class ChainLayer:
    """One NAS-RL layer: filter size, filter count, stride, and the earlier layers it reads (empty: the image)."""

    height: int
    width: int
    filters: int
    stride: int | tuple[int, int] = 1  # (height, width) when they differ
    inputs: tuple[int, ...] = ()


class ChainNetwork(nn.Module):
    """NAS-RL's CNN with its three "compilation failure" rules made into wiring.

    A layer that reads nothing reads the image; inputs of different sizes are zero-padded to the
    largest and concatenated along channels; every layer no later layer reads goes to the
    classifier (padded and concatenated the same way).
    """

    def __init__(self, layers: Sequence[ChainLayer], in_channels: int, num_outputs: int) -> None:
        super().__init__()
        self.layers = tuple(layers)
        convs = []
        for i, layer in enumerate(self.layers):
            if any(not 0 <= j < i for j in layer.inputs):
                raise ValueError(f"chain layer {i} reads {layer.inputs}; only earlier layers can be read")
            c_in = sum(self.layers[j].filters for j in layer.inputs) if layer.inputs else in_channels
            convs.append(conv_bn_relu(c_in, layer.filters, (layer.height, layer.width), layer.stride))
        self.convs = nn.ModuleList(convs)
        read = {j for layer in self.layers for j in layer.inputs}
        self.outputs = tuple(i for i in range(len(self.layers)) if i not in read)
        self.classifier = Classifier(sum(self.layers[i].filters for i in self.outputs), num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_images(x)
        outs: list[torch.Tensor] = []
        for layer, conv in zip(self.layers, self.convs):
            inp = pad_concat([outs[j] for j in layer.inputs]) if layer.inputs else x
            outs.append(conv(inp))
        return self.classifier(pad_concat([outs[i] for i in self.outputs]))


# ---- MetaQNN: conv / pool / fc layer states --------------------------------------------------------
@dataclass(frozen=True)
class QLayer:
    """A MetaQNN layer state: ("conv", kernel, filters), ("pool", kernel, stride) or ("fc", units, 0)."""

    kind: str
    a: int
    b: int = 0


class MetaQNNNetwork(nn.Module):
    """A plain feed-forward stack; the terminal state is "softmax" (flatten, linear) or "gap" (pool, linear).

    Pool kernels larger than the current map are clipped to it, so a description made for 32x32
    images still builds for smaller ones.
    """

    def __init__(self, layers: Sequence[QLayer], terminal: str, in_channels: int, height: int, width: int,
                 num_outputs: int) -> None:
        super().__init__()
        if terminal not in ("softmax", "gap"):
            raise ValueError(f"metaqnn: terminal must be 'softmax' or 'gap', got {terminal!r}")
        features: list[nn.Module] = []
        dense: list[nn.Module] = []
        c, h, w = in_channels, height, width
        flat: int | None = None
        for layer in layers:
            if layer.kind == "conv":
                if flat is not None:
                    raise ValueError("metaqnn: a conv layer cannot follow a fully connected layer")
                features.append(conv_bn_relu(c, layer.b, layer.a))
                c = layer.b
            elif layer.kind == "pool":
                if flat is not None:
                    raise ValueError("metaqnn: a pool layer cannot follow a fully connected layer")
                kh, kw = min(layer.a, h), min(layer.a, w)
                features.append(nn.MaxPool2d((kh, kw), stride=layer.b))
                h, w = (h - kh) // layer.b + 1, (w - kw) // layer.b + 1
            elif layer.kind == "fc":
                width_in = flat if flat is not None else c * h * w
                dense += [nn.Linear(width_in, layer.a), nn.ReLU(inplace=False)]
                flat = layer.a
            else:
                raise ValueError(f"metaqnn: unknown layer kind {layer.kind!r}")
        if terminal == "gap" and flat is not None:
            raise ValueError("metaqnn: global average pooling cannot follow a fully connected layer")
        self.features = nn.Sequential(*features)
        self.dense = nn.Sequential(*dense)
        self.gap = terminal == "gap"
        head_in = c if self.gap else (flat if flat is not None else c * h * w)
        self.head = nn.Linear(head_in, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(as_images(x))
        if self.gap:
            return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        return self.head(self.dense(torch.flatten(x, 1)))


# ---- ENAS macro: one op per layer plus skips, reductions at 1/3 and 2/3 ------------------------------------
def enas_reduction_layers(num_layers: int) -> tuple[int, ...]:
    """Layers after which ENAS halves the resolution (and doubles the width): the ends of the first two thirds."""
    distance = num_layers // 3
    if distance == 0:
        return ()
    return tuple(i for i in (distance - 1, 2 * distance - 1) if i < num_layers - 1)


class ENASMacroNetwork(nn.Module):
    """Layer k applies its op to layer k-1 and adds the layers its skips name (then batch norm).

    At a reduction every stored layer output still read later (by a skip, or as the next
    layer's input) is factorized-reduced, so later skips still match in size.
    """

    def __init__(self, ops: Sequence[str], skips: Sequence[Sequence[int]], in_channels: int, num_outputs: int,
                 channels: int = 24) -> None:
        super().__init__()
        if len(ops) != len(skips):
            raise ValueError("enas_macro: one skip list per layer")
        self.skips = tuple(tuple(s) for s in skips)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))
        self.reductions = enas_reduction_layers(len(ops))
        c = channels
        layers, norms, reduce = [], [], {}
        for k, name in enumerate(ops):
            if any(not 0 <= j < k for j in self.skips[k]):
                raise ValueError(f"enas_macro: layer {k} skips from {self.skips[k]}; only earlier layers allowed")
            layers.append(make_op(name, c, c, 1))
            norms.append(nn.BatchNorm2d(c) if self.skips[k] else nn.Identity())
            if k in self.reductions:
                read_later = {j for later in self.skips[k + 1:] for j in later} | {k}
                for j in sorted(read_later):
                    reduce[f"{k}_{j}"] = FactorizedReduce(c, 2 * c)
                c *= 2
        self.layers = nn.ModuleList(layers)
        self.norms = nn.ModuleList(norms)
        self.reduce = nn.ModuleDict(reduce)
        self.classifier = nn.Sequential(nn.ReLU(inplace=False), Classifier(c, num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prev = self.stem(as_images(x))
        outs: list[torch.Tensor] = []
        for k, (layer, norm) in enumerate(zip(self.layers, self.norms)):
            out = layer(prev)
            for j in self.skips[k]:
                out = out + outs[j]
            outs.append(norm(out))
            if k in self.reductions:  # outputs nobody reads again stay as they are
                outs = [self.reduce[f"{k}_{j}"](o) if f"{k}_{j}" in self.reduce else o for j, o in enumerate(outs)]
            prev = outs[-1]
        return self.classifier(prev)


# ---- Model Search's convolutional tower -----------------------------------------------------------------
class ConvBlock(nn.Module):
    """A conv-tower block; `out_channels` lets the next block size its input."""

    out_channels: int


class Residual(ConvBlock):
    """Two 3x3 conv-BN layers with a skip (projected by a 1x1 conv when the width changes)."""

    def __init__(self, c_in: int, width: int) -> None:
        super().__init__()
        self.out_channels = width
        self.body = nn.Sequential(conv_bn_relu(c_in, width, 3), nn.Conv2d(width, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width))
        self.skip: nn.Module = nn.Identity() if c_in == width else nn.Conv2d(c_in, width, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


class Wrapped(ConvBlock):
    def __init__(self, module: nn.Module, out_channels: int) -> None:
        super().__init__()
        self.body = module
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # type: ignore[no-any-return]


def _conv_block(c_in: int, kernel: int, width: int, stride: int = 1) -> ConvBlock:
    return Wrapped(conv_bn_relu(c_in, width, kernel, stride), width)


def _factorized_block(c_in: int, width: int) -> ConvBlock:
    return Wrapped(nn.Sequential(FactorizedConv(c_in, width, 7), nn.ReLU(inplace=False)), width)


def _pool_block(c_in: int, kind: str) -> ConvBlock:
    pool = (nn.MaxPool2d(3, stride=2, padding=1) if kind == "max"
            else nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False))
    return Wrapped(pool, c_in)


# Name -> factory(c_in). The cnn space keeps the token order of these names; a test keeps the two in step.
CONV_BLOCKS: dict[str, Callable[[int], ConvBlock]] = {
    **{f"conv_3x3_{w}": partial(_conv_block, kernel=3, width=w) for w in (16, 32, 64)},
    **{f"conv_5x5_{w}": partial(_conv_block, kernel=5, width=w) for w in (16, 32, 64)},
    **{f"conv_1x7_7x1_{w}": partial(_factorized_block, width=w) for w in (32, 64)},
    **{f"downsample_conv_{w}": partial(_conv_block, kernel=3, width=w, stride=2) for w in (32, 64, 128)},
    **{f"res_conv_{w}": partial(Residual, width=w) for w in (16, 32, 64)},
    "max_pool_3x3": partial(_pool_block, kind="max"),
    "avg_pool_3x3": partial(_pool_block, kind="avg"),
}
TOWER_DENSE_BLOCKS: tuple[str, ...] = ("fc_64", "fc_128", "fc_256", "fc_512", "res_fc_64", "res_fc_128",
                                       "res_fc_256")


class ConvTower(nn.Module):
    """Conv blocks, then (after global average pooling) dense blocks, then a linear head.

    "identity" blocks are skipped; a dense block after a conv block is a build error, as the
    cnn space never proposes one. Any other name is a user conv block (nasforge.models.user_blocks), built
    for the shape the blocks before it give `image_size` inputs.
    """

    def __init__(self, blocks: Sequence[str], in_channels: int, num_outputs: int,
                 image_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        convs: list[nn.Module] = []
        dense: list[nn.Module] = []
        c = in_channels
        width: int | None = None
        style = LayerStyle()
        for name in blocks:
            if name == "identity":
                continue
            if name in CONV_BLOCKS:
                if width is not None:
                    raise ValueError(f"cnn: conv block {name!r} cannot follow a dense block")
                block = CONV_BLOCKS[name](c)
                convs.append(block)
                c = block.out_channels
            elif name in TOWER_DENSE_BLOCKS:
                dense_block = DENSE_BLOCKS[name](width if width is not None else c, style)
                dense.append(dense_block)
                width = dense_block.out_features
            else:
                if width is not None:
                    raise ValueError(f"cnn: conv block {name!r} cannot follow a dense block")
                if image_size is None:
                    raise ValueError(f"cnn: user block {name!r} needs the tower's image_size")
                user = build_user_block(name, _shape_after(convs, in_channels, image_size), "cnn")
                convs.append(user)
                c = user.out_channels
        self.convs = nn.Sequential(*convs)
        self.dense = nn.Sequential(*dense)
        self.head = nn.Linear(width if width is not None else c, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(F.adaptive_avg_pool2d(self.convs(as_images(x)), 1), 1)
        return self.head(self.dense(x))


def _shape_after(convs: Sequence[nn.Module], channels: int, image_size: tuple[int, int]) -> tuple[int, int, int]:
    """(C, H, W) that `convs` give one image of `channels` x `image_size` (one forward pass on zeros)."""
    x = torch.zeros(2, channels, *image_size)
    with torch.no_grad():
        for conv in convs:
            was_training = conv.training
            conv.eval()
            x = conv(x)
            conv.train(was_training)
    return int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
