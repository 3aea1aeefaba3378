"""`Gated`: a block for the `dnn` space (`--space-option 'user_blocks=[gated]'`).

A block factory is called with the shape of one input, `(features,)` in the dnn space, and the network's
`LayerStyle` when it takes a `style` parameter; it returns a module whose output is (batch, features').
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Gated(nn.Module):
    """A gated linear unit of 32 features: value * sigmoid(gate), after the network's normalization."""

    def __init__(self, input_shape: tuple[int, ...], style: Any = None, width: int = 32) -> None:
        super().__init__()
        (features,) = input_shape
        self.value = nn.Linear(features, width)
        self.gate = nn.Linear(features, width)
        self.norm = style.norm(width) if style is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.value(x) * torch.sigmoid(self.gate(x)))
