"""ENAS's macro search space (Pham et al., 2018): one op per layer plus skip connections.

Token layout per layer k: its op, then one yes/no anchor decision for each earlier layer j
(is layer j added to layer k's output?). Layer k's op reads layer k-1; the skips are summed
in. The network halves the resolution (factorized reduce, width doubled) after the layers at
1/3 and 2/3 of the depth, as the paper does.
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

# Names in nasforge.models.ops.OPS.
ENAS_OPS: tuple[str, ...] = ("conv_3x3", "conv_5x5", "sep_conv_3x3", "sep_conv_5x5", "max_pool_3x3",
                             "avg_pool_3x3")
ANCHOR: tuple[bool, ...] = (False, True)
_SHORT = {"conv_3x3": "c3", "conv_5x5": "c5", "sep_conv_3x3": "s3", "sep_conv_5x5": "s5", "max_pool_3x3": "mp",
          "avg_pool_3x3": "ap"}


class ENASMacroSpace(TokenSpace):
    """`num_layers` layers; `channels` is the width before the first reduction."""

    name = "enas_macro"

    def __init__(self, num_layers: int = 12, channels: int = 24) -> None:
        if int(num_layers) < 1 or int(channels) < 1:
            raise ConfigError("enas_macro: num_layers and channels must be positive")
        self.num_layers = int(num_layers)
        self.channels = int(channels)
        layout: list[Decision] = []
        self._starts: list[int] = []
        for k in range(self.num_layers):
            self._starts.append(len(layout))
            layout.append(Decision("op", ENAS_OPS, layer=k))
            layout += [Decision("anchor", ANCHOR, kind="anchor", layer=k, source=j) for j in range(k)]
        self._layout = tuple(layout)

    def decision(self, prefix: Sequence[int]) -> Decision | None:
        n = len(prefix)
        return self._layout[n] if n < len(self._layout) else None

    def config(self) -> JSONDict:
        return {"num_layers": self.num_layers, "channels": self.channels}

    def layers(self, arch: Architecture) -> list[JSONDict]:
        """One dict per layer: its op and the earlier layers added to it."""
        tokens = self.assemble(arch.tokens).tokens
        return [{"op": ENAS_OPS[tokens[s]], "skips": [j for j in range(k) if tokens[s + 1 + j] == 1]}
                for k, s in enumerate(self._starts)]

    def describe(self, arch: Architecture) -> JSONDict:
        return {"layers": self.layers(arch)}

    def summary(self, arch: Architecture) -> str:
        parts = []
        for layer in self.layers(arch):
            skips = ",".join(str(j) for j in layer["skips"])
            parts.append(_SHORT[layer["op"]] + (f"+[{skips}]" if skips else ""))
        return " ".join(parts)

    def from_json(self, data: JSONDict) -> Architecture:
        """Tokens when present, else the `describe()` form (bare or under "description")."""
        if data.get("space", self.name) != self.name:
            raise InvalidArchitecture(f"architecture is for space {data.get('space')!r}, not {self.name!r}")
        if "tokens" in data:
            return self.assemble(data["tokens"])
        layers = data.get("description", data).get("layers")
        if not isinstance(layers, list) or len(layers) != self.num_layers:
            raise InvalidArchitecture(f"enas_macro: description needs 'layers', a list of {self.num_layers}")
        tokens: list[int] = []
        try:
            for k, layer in enumerate(layers):
                skips = {int(j) for j in layer.get("skips", [])}
                tokens += [ENAS_OPS.index(layer["op"]), *(int(j in skips) for j in range(k))]
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise InvalidArchitecture(f"enas_macro: bad layer description: {exc}") from exc
        return self.assemble(tokens)

    def build(self, arch: Architecture, data: DataSpec) -> torch.nn.Module:
        from nasforge.models.networks import ENASMacroNetwork, image_shape

        in_channels, _, _ = image_shape(data.input_shape, self.name)
        layers = self.layers(arch)
        return ENASMacroNetwork([lay["op"] for lay in layers], [lay["skips"] for lay in layers], in_channels,
                                int(data.num_outputs), self.channels)
