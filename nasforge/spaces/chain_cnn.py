"""NAS-RL's layer-by-layer CNN (Zoph & Le, 2017): filter sizes, filter count, stride, anchor skips.

Token layout per layer i: one yes/no anchor decision for each earlier layer j (does layer i
read layer j?), then filter height, filter width, filter count and, when `search_stride` is
on, the stride height and the stride width (two tokens, as the paper's controller predicts
them). Anchors come first, as in the paper's controller, which scores them by attention over
earlier layers' anchor states (`Decision.kind == "anchor"`).

With `min_layers` below `num_layers` a first `depth` token picks the number of layers; the
layers' tokens are the same as in a fixed-depth network of that many layers. NAS-RL does not
search the depth: its controller is given a depth that grows during training, which is the
`reinforce` strategy's `depth_schedule` pinning this token. Without `min_layers` there is no
depth token and the layout is fixed for a configuration, so decisions are precomputed.

Stored architectures from when a searched stride was one token (square) still read back: a
token sequence of that old length takes its stride for both height and width.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture, Decision, JSONDict
from nasforge.spaces.base import InvalidArchitecture, TokenSpace

if TYPE_CHECKING:
    import torch

    from nasforge.data.base import DataSpec

FILTER_SIZES: tuple[int, ...] = (1, 3, 5, 7)
FILTER_COUNTS: tuple[int, ...] = (24, 36, 48, 64)
STRIDES: tuple[int, ...] = (1, 2)
ANCHOR: tuple[bool, ...] = (False, True)


class ChainCNNSpace(TokenSpace):
    """`num_layers` conv layers; a layer reads the layers its anchors select (the image when none)."""

    name = "chain_cnn"

    def __init__(self, num_layers: int = 6, search_stride: bool = False,
                 filters: Sequence[int] | None = None, min_layers: int | None = None) -> None:
        if int(num_layers) < 1:
            raise ConfigError(f"chain_cnn: num_layers must be >= 1, got {num_layers}")
        self.num_layers = int(num_layers)
        self.min_layers = int(min_layers) if min_layers is not None else None
        if self.min_layers is not None and not 1 <= self.min_layers <= self.num_layers:
            raise ConfigError(f"chain_cnn: need 1 <= min_layers <= num_layers, got min_layers={min_layers}, "
                              f"num_layers={num_layers}")
        self.search_stride = bool(search_stride)
        self.filters = [int(f) for f in filters] if filters is not None else None
        allowed_filters = None
        if self.filters is not None:
            bad = [f for f in self.filters if f not in FILTER_COUNTS]
            if bad or not self.filters:
                raise ConfigError(f"chain_cnn: filters must be a non-empty subset of {list(FILTER_COUNTS)}, "
                                  f"got {self.filters}")
            allowed_filters = tuple(sorted({FILTER_COUNTS.index(f) for f in self.filters}))
        layout: list[Decision] = []
        self._starts: list[int] = []
        self._legacy_length = 0  # token count of the one-stride-token layout (see the module docstring)
        for i in range(self.num_layers):
            self._starts.append(len(layout))
            layout += [Decision("anchor", ANCHOR, kind="anchor", layer=i, source=j) for j in range(i)]
            layout += [Decision("filter_height", FILTER_SIZES, layer=i),
                       Decision("filter_width", FILTER_SIZES, layer=i),
                       Decision("filters", FILTER_COUNTS, allowed=allowed_filters, layer=i)]
            if self.search_stride:
                layout += [Decision("stride_height", STRIDES, layer=i), Decision("stride_width", STRIDES, layer=i)]
            self._legacy_length += i + 3 + int(self.search_stride)
        self._layout = tuple(layout)
        self._ends = (*self._starts[1:], len(layout))  # token count of a network of 1, 2, ... layers
        self._depth_decision = None
        if self.has_depth:
            depths = tuple(range(1, self.num_layers + 1))
            self._depth_decision = Decision("depth", depths, allowed=tuple(range(self.min_layers - 1,  # type: ignore[operator]
                                                                                   self.num_layers)))

    @property
    def has_depth(self) -> bool:
        """Whether the first token is the number of layers (min_layers below num_layers)."""
        return self.min_layers is not None and self.min_layers < self.num_layers

    def decision(self, prefix: Sequence[int]) -> Decision | None:
        n = len(prefix)
        if self._depth_decision is None:
            return self._layout[n] if n < len(self._layout) else None
        if n == 0:
            return self._depth_decision
        end = self._ends[int(prefix[0])]
        return self._layout[n - 1] if n - 1 < end else None

    def assemble(self, tokens: Sequence[int]) -> Architecture:
        """Also reads the old one-stride-token layout: its stride is used for height and width."""
        tokens = [int(t) for t in tokens]
        if self.search_stride and not self.has_depth and len(tokens) == self._legacy_length:
            new: list[int] = []
            for i in range(self.num_layers):
                size = i + 3
                new += tokens[:size] + [tokens[size]] * 2
                tokens = tokens[size + 1:]
            tokens = new
        return super().assemble(tokens)

    def config(self) -> JSONDict:
        return {"num_layers": self.num_layers, "search_stride": self.search_stride, "filters": self.filters,
                "min_layers": self.min_layers}

    def depth(self, arch: Architecture) -> int:
        """Number of layers."""
        return int(arch.tokens[0]) + 1 if self.has_depth else self.num_layers

    # ---- views -------------------------------------------------------------------------
    def layers(self, arch: Architecture) -> list[JSONDict]:
        """One dict per layer: height, width, filters, stride (an int, or [height, width] when they differ),
        inputs (earlier layers read; [] = image)."""
        tokens = self.assemble(arch.tokens).tokens
        offset = 1 if self.has_depth else 0
        out = []
        for i, start in enumerate(self._starts[:self.depth(arch)]):
            start += offset
            inputs = [j for j in range(i) if tokens[start + j] == 1]
            p = start + i
            stride: int | list[int] = 1
            if self.search_stride:
                sh, sw = STRIDES[tokens[p + 3]], STRIDES[tokens[p + 4]]
                stride = sh if sh == sw else [sh, sw]
            out.append({"height": FILTER_SIZES[tokens[p]], "width": FILTER_SIZES[tokens[p + 1]],
                        "filters": FILTER_COUNTS[tokens[p + 2]], "stride": stride, "inputs": inputs})
        return out

    def describe(self, arch: Architecture) -> JSONDict:
        return {"layers": self.layers(arch)}

    def summary(self, arch: Architecture) -> str:
        parts = []
        for i, layer in enumerate(self.layers(arch)):
            text = f"{layer['height']}x{layer['width']}x{layer['filters']}"
            if layer["stride"] != 1:
                text += f"/s{stride_text(layer['stride'])}"
            src = ",".join(str(j) for j in layer["inputs"]) or "img"
            parts.append(f"L{i}({src}):{text}")
        return " ".join(parts)

    def parse(self, description: JSONDict) -> Architecture:
        layers = description.get("layers")
        low = self.min_layers if self.min_layers is not None and self.has_depth else self.num_layers
        if not isinstance(layers, list) or not low <= len(layers) <= self.num_layers:
            want = f"{low} to {self.num_layers}" if self.has_depth else str(self.num_layers)
            raise InvalidArchitecture(f"chain_cnn: description needs 'layers', a list of {want} layers")
        tokens: list[int] = [len(layers) - 1] if self.has_depth else []
        try:
            for i, layer in enumerate(layers):
                inputs = {int(j) for j in layer.get("inputs", [])}
                tokens += [int(j in inputs) for j in range(i)]
                tokens += [FILTER_SIZES.index(int(layer["height"])), FILTER_SIZES.index(int(layer["width"])),
                           FILTER_COUNTS.index(int(layer["filters"]))]
                stride = layer.get("stride", 1)
                sh, sw = (stride, stride) if isinstance(stride, int) else (int(stride[0]), int(stride[1]))
                if self.search_stride:
                    tokens += [STRIDES.index(int(sh)), STRIDES.index(int(sw))]
                elif (sh, sw) != (1, 1):
                    raise InvalidArchitecture("chain_cnn: stride given but search_stride is off")
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidArchitecture(f"chain_cnn: bad layer description: {exc}") from exc
        return self.assemble(tokens)

    # ---- PyTorch ---------------------------------------------------------------------
    def build(self, arch: Architecture, data: DataSpec) -> torch.nn.Module:
        from nasforge.models.networks import ChainLayer, ChainNetwork, image_shape

        channels, _, _ = image_shape(data.input_shape, self.name)
        layers = [ChainLayer(lay["height"], lay["width"], lay["filters"], stride_pair(lay["stride"]),
                             tuple(lay["inputs"])) for lay in self.layers(arch)]
        return ChainNetwork(layers, channels, int(data.num_outputs))


def stride_pair(stride: int | Sequence[int]) -> tuple[int, int]:
    """(height, width) of a layer description's stride (an int, or [height, width])."""
    return (int(stride), int(stride)) if isinstance(stride, int) else (int(stride[0]), int(stride[1]))


def stride_text(stride: int | Sequence[int]) -> str:
    """2, or 1x2 for height 1 and width 2."""
    sh, sw = stride_pair(stride)
    return str(sh) if sh == sw else f"{sh}x{sw}"
