"""`LadderSpace`: dense networks whose layers each pick a width and an activation.

A space needs a `name`, `decision(prefix)` (the next choice after the tokens so far, or None when the
architecture is complete) and `build(arch, data)`; sampling, mutation, keys and JSON come from TokenSpace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from nasforge.core.types import Architecture, Decision
from nasforge.data.base import DataSpec
from nasforge.spaces.base import TokenSpace

WIDTHS = (16, 32, 64, 128)
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


class LadderSpace(TokenSpace):
    """Token layout: a depth, then (width, activation) per layer."""

    name = "ladder"
    option_help: ClassVar[dict[str, str]] = {"max_layers": "most layers",
                                             "widths": "allowed widths, a mask over 16, 32, 64, 128 (null: all)"}

    def __init__(self, max_layers: int = 3, widths: Sequence[int] | None = None) -> None:
        if not 1 <= int(max_layers) <= 8:
            raise ValueError(f"max_layers must be in 1..8, got {max_layers}")
        unknown = [w for w in widths or [] if w not in WIDTHS]
        if unknown or (widths is not None and not widths):
            raise ValueError(f"widths must be some of {list(WIDTHS)}, got {widths}")
        self.max_layers = int(max_layers)
        self.widths = [int(w) for w in widths] if widths is not None else None
        self._allowed = tuple(WIDTHS.index(w) for w in self.widths) if self.widths is not None else None

    def decision(self, prefix: Sequence[int]) -> Decision | None:
        if not prefix:
            return Decision("depth", tuple(range(1, self.max_layers + 1)))
        layer, part = divmod(len(prefix) - 1, 2)
        if layer >= prefix[0] + 1:
            return None
        if part == 0:
            return Decision("width", WIDTHS, allowed=self._allowed, layer=layer)
        return Decision("activation", tuple(ACTIVATIONS), layer=layer)

    def config(self) -> dict[str, object]:
        return {"max_layers": self.max_layers, "widths": self.widths}

    def layers(self, arch: Architecture) -> list[tuple[int, str]]:
        tokens = arch.tokens[1:]
        return [(WIDTHS[tokens[i]], tuple(ACTIVATIONS)[tokens[i + 1]]) for i in range(0, len(tokens), 2)]

    def summary(self, arch: Architecture) -> str:
        return " > ".join(f"{width} {act}" for width, act in self.layers(arch))

    def build(self, arch: Architecture, data: DataSpec) -> torch.nn.Module:
        width = 1
        for size in data.input_shape:
            width *= int(size)
        modules: list[nn.Module] = [nn.Flatten()]
        for units, act in self.layers(arch):
            modules += [nn.Linear(width, units), ACTIVATIONS[act]()]
            width = units
        modules.append(nn.Linear(width, max(1, data.num_outputs)))
        return nn.Sequential(*modules)
