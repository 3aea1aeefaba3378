"""Training-time image augmentation on whole batches of (N, C, H, W) tensors, without torchvision.

The usual CIFAR recipe of the NAS papers: random crop after zero padding, horizontal flip, and
cutout (DeVries & Taylor: one square per image, centre anywhere, clipped at the border). Inputs are
already normalised, so zero padding and zeroed cutout squares are the mean colour. Every random
draw comes from the generator passed in (on the CPU), so a trial seed fixes the augmented stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from nasforge.core.errors import ConfigError

OPTIONS = ("crop_padding", "flip", "cutout")


def _draw(shape: tuple[int, ...], high: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=generator).to(device)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Pad each side by `padding` zeros, then cut a random (H, W) window per image.

    Two `gather`s (rows, then columns) instead of one four-index lookup: about 3x faster on the CPU.
    """
    if padding <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = _draw((n,), 2 * padding + 1, generator, x.device)
    dx = _draw((n,), 2 * padding + 1, generator, x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(n, c, h, w + 2 * padding)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(n, c, h, w)
    return padded.gather(2, rows).gather(3, cols)


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror left-right each image with probability 1/2 (only the chosen half is copied twice)."""
    flip = _draw((x.shape[0],), 2, generator, x.device).bool()
    out = x.clone()
    out[flip] = x[flip].flip(3)
    return out


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one `size` x `size` square per image, centred anywhere (so it may hang off the border)."""
    if size <= 0:
        return x
    n, _, h, w = x.shape
    cy = _draw((n, 1), h, generator, x.device)
    cx = _draw((n, 1), w, generator, x.device)
    top, left = cy - size // 2, cx - size // 2
    r = torch.arange(h, device=x.device)[None, :]
    c = torch.arange(w, device=x.device)[None, :]
    inside_r = (r >= top) & (r < top + size)  # (N, H)
    inside_c = (c >= left) & (c < left + size)  # (N, W)
    keep = ~(inside_r[:, :, None] & inside_c[:, None, :])
    return x * keep[:, None].to(x.dtype)


@dataclass(frozen=True)
class Augment:
    """What to apply, in the order crop, flip, cutout; built from the train evaluator's `augment` option."""

    crop_padding: int = 0
    flip: bool = False
    cutout: int = 0

    @staticmethod
    def from_options(options: Mapping[str, Any] | None) -> Augment | None:
        """None, or a dict like `{"crop_padding": 4, "flip": true, "cutout": 16}`; None when nothing is on."""
        if options is None:
            return None
        if not isinstance(options, Mapping):
            raise ConfigError(f"augment must be an object like {{'crop_padding': 4, 'flip': true}}, "
                              f"got {options!r}")
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ConfigError(f"augment: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(OPTIONS)}")
        for name in ("crop_padding", "cutout"):
            value = options.get(name, 0) or 0
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"augment: {name} must be a non-negative integer, got {value!r}")
        flip = options.get("flip", False)
        if not isinstance(flip, bool):
            raise ConfigError(f"augment: flip must be true or false, got {flip!r}")
        augment = Augment(int(options.get("crop_padding") or 0), flip, int(options.get("cutout") or 0))
        return augment if augment.active else None

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.flip or self.cutout > 0

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if x.dim() != 4:
            raise ConfigError(f"augment works on image batches (N, C, H, W), got a tensor of shape {tuple(x.shape)}")
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, generator)
        if self.flip:
            x = random_flip(x, generator)
        if self.cutout:
            x = cutout(x, self.cutout, generator)
        return x

    def to_json(self) -> dict[str, Any]:
        return {"crop_padding": self.crop_padding, "flip": self.flip, "cutout": self.cutout}
