"""Parameter and multiply-accumulate counts, so evaluators can report a model's cost beside its accuracy.

MACs are counted from the shapes that actually flow through a forward pass (forward hooks on
every conv and linear layer), which is exact for networks whose wiring depends on the
architecture (unused cell outputs, padded skips) where a formula per space would drift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Trainable parameters."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def count_flops(model: nn.Module, input_shape: Sequence[int], dtype: torch.dtype = torch.float32) -> int:
    """Multiply-accumulates of conv and linear layers for one example of shape `input_shape`.

    `dtype=torch.long` feeds token ids (zeros) for language models. Runs in eval mode without
    gradients and restores the model's mode afterwards.
    """
    total = 0

    def conv_hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Conv2d | nn.Conv1d)
        per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        total += int(output.numel() // output.shape[0]) * per_output

    def linear_hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Linear)
        total += int(output.numel() // output.shape[0]) * module.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Conv1d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total
