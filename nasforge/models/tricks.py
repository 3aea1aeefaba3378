"""NASNet's and DARTS's final-training tricks: scheduled drop-path and an auxiliary classifier head.

They belong to the final training of a found cell, not to short search trials (the papers use them
only there), so a network carries them switched off and the training loop switches them on through
three duck-typed hooks, which any network may implement:

* `set_drop_path(prob)`: called before each epoch with the maximum probability times the share of
  training done, so it rises linearly from 0 (NASNet's ScheduledDropPath);
* `add_auxiliary_head()`: builds the head, before the optimizer is made;
* `auxiliary_logits`: the auxiliary head's output of the last training forward pass (or None);
* `remove_auxiliary()`: drops the head after training, so checkpoints, predict and export see the
  plain network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def drop_path(x: torch.Tensor, prob: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero whole examples of one path with probability `prob`, scaling the kept ones by 1 / (1 - prob)."""
    if prob <= 0.0:
        return x
    keep = 1.0 - prob
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype)
    mask.bernoulli_(keep, generator=generator)
    return x * mask / keep


class AuxiliaryHead(nn.Module):
    """The papers' CIFAR head (pool to 2x2, 1x1 conv to 128, 2x2 conv to 768, linear), for any input size."""

    def __init__(self, channels: int, num_outputs: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Conv2d(channels, 128, 1, bias=False), nn.BatchNorm2d(128),
            nn.ReLU(), nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU())
        self.classifier = nn.Linear(768, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class FinalTraining:
    """What the training loop does with a network's tricks; inert for a network that has none."""

    def __init__(self, net: nn.Module, drop_path: float = 0.0, auxiliary_weight: float = 0.0) -> None:
        self.net = net
        self.drop_path = float(drop_path)
        self.auxiliary_weight = float(auxiliary_weight)
        if self.drop_path > 0.0 and not hasattr(net, "set_drop_path"):
            raise ValueError(f"drop_path needs a cell network (nasnet, darts); {type(net).__name__} has no paths "
                             "to drop")
        if self.auxiliary_weight > 0.0:
            add = getattr(net, "add_auxiliary_head", None)
            if add is None:
                raise ValueError(f"auxiliary_weight needs a cell network (nasnet, darts); {type(net).__name__} "
                                 "has no auxiliary head")
            add()

    def progress(self, fraction: float) -> None:
        if self.drop_path > 0.0:
            self.net.set_drop_path(min(max(float(fraction), 0.0), 1.0) * self.drop_path)  # type: ignore[operator]

    def loss(self, loss: torch.Tensor, target: torch.Tensor,
             criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The main loss plus the weighted auxiliary one (DARTS: loss + 0.4 * aux_loss)."""
        logits: Any = getattr(self.net, "auxiliary_logits", None) if self.auxiliary_weight > 0.0 else None
        if logits is None:
            return loss
        return loss + self.auxiliary_weight * criterion(logits, target)

    def finish(self) -> None:
        """Training is over: no more dropped paths, and no auxiliary head in what is saved or exported."""
        if self.drop_path > 0.0:
            self.net.set_drop_path(0.0)  # type: ignore[operator]
        if self.auxiliary_weight > 0.0:
            self.net.remove_auxiliary()  # type: ignore[operator]
