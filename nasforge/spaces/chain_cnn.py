"""NAS-RL's layer-by-layer CNN (Zoph & Le, 2017): filter sizes, filter count, stride, anchor skips.

Token layout per layer i: one yes/no anchor decision for each earlier layer j (does layer i
read layer j?), then filter height, filter width, filter count and, when `search_stride` is
on, the stride. Anchors come first, as in the paper's controller, which scores them by
attention over earlier layers' anchor states (`Decision.kind == "anchor"`). The layout is
fixed for a configuration, so decisions are precomputed.
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
                 filters: Sequence[int] | None = None) -> None:
        if int(num_layers) < 1:
            raise ConfigError(f"chain_cnn: num_layers must be >= 1, got {num_layers}")
        self.num_layers = int(num_layers)
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
        for i in range(self.num_layers):
            self._starts.append(len(layout))
            layout += [Decision("anchor", ANCHOR, kind="anchor", layer=i, source=j) for j in range(i)]
            layout += [Decision("filter_height", FILTER_SIZES, layer=i),
                       Decision("filter_width", FILTER_SIZES, layer=i),
                       Decision("filters", FILTER_COUNTS, allowed=allowed_filters, layer=i)]
            if self.search_stride:
                layout.append(Decision("stride", STRIDES, layer=i))
        self._layout = tuple(layout)

    def decision(self, prefix: Sequence[int]) -> Decision | None:
        n = len(prefix)
        return self._layout[n] if n < len(self._layout) else None

    def config(self) -> JSONDict:
        return {"num_layers": self.num_layers, "search_stride": self.search_stride, "filters": self.filters}

    # ---- views -------------------------------------------------------------------------
    def layers(self, arch: Architecture) -> list[JSONDict]:
        """One dict per layer: height, width, filters, stride, inputs (earlier layers read; [] = image)."""
        tokens = self.assemble(arch.tokens).tokens
        out = []
        for i, start in enumerate(self._starts):
            inputs = [j for j in range(i) if tokens[start + j] == 1]
            p = start + i
            out.append({"height": FILTER_SIZES[tokens[p]], "width": FILTER_SIZES[tokens[p + 1]],
                        "filters": FILTER_COUNTS[tokens[p + 2]],
                        "stride": STRIDES[tokens[p + 3]] if self.search_stride else 1, "inputs": inputs})
        return out

    def describe(self, arch: Architecture) -> JSONDict:
        return {"layers": self.layers(arch)}

    def summary(self, arch: Architecture) -> str:
        parts = []
        for i, layer in enumerate(self.layers(arch)):
            text = f"{layer['height']}x{layer['width']}x{layer['filters']}"
            if layer["stride"] != 1:
                text += f"/s{layer['stride']}"
            src = ",".join(str(j) for j in layer["inputs"]) or "img"
            parts.append(f"L{i}({src}):{text}")
        return " ".join(parts)

    def from_json(self, data: JSONDict) -> Architecture:
        """Tokens when present, else the `describe()` form (bare or under "description")."""
        if data.get("space", self.name) != self.name:
            raise InvalidArchitecture(f"architecture is for space {data.get('space')!r}, not {self.name!r}")
        if "tokens" in data:
            return self.assemble(data["tokens"])
        return self.parse(data.get("description", data))

    def parse(self, description: JSONDict) -> Architecture:
        layers = description.get("layers")
        if not isinstance(layers, list) or len(layers) != self.num_layers:
            raise InvalidArchitecture(f"chain_cnn: description needs 'layers', a list of {self.num_layers} layers")
        tokens: list[int] = []
        try:
            for i, layer in enumerate(layers):
                inputs = {int(j) for j in layer.get("inputs", [])}
                tokens += [int(j in inputs) for j in range(i)]
                tokens += [FILTER_SIZES.index(int(layer["height"])), FILTER_SIZES.index(int(layer["width"])),
                           FILTER_COUNTS.index(int(layer["filters"]))]
                if self.search_stride:
                    tokens.append(STRIDES.index(int(layer.get("stride", 1))))
                elif int(layer.get("stride", 1)) != 1:
                    raise InvalidArchitecture("chain_cnn: stride given but search_stride is off")
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidArchitecture(f"chain_cnn: bad layer description: {exc}") from exc
        return self.assemble(tokens)

    # ---- PyTorch ---------------------------------------------------------------------
    def build(self, arch: Architecture, data: DataSpec) -> torch.nn.Module:
        from nasforge.models.networks import ChainLayer, ChainNetwork, image_shape

        channels, _, _ = image_shape(data.input_shape, self.name)
        layers = [ChainLayer(lay["height"], lay["width"], lay["filters"], lay["stride"], tuple(lay["inputs"]))
                  for lay in self.layers(arch)]
        return ChainNetwork(layers, channels, int(data.num_outputs))
