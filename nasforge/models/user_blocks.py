"""Blocks from user code in the dnn, cnn and sequence spaces (Model Search's `register_block`).

A user block is a factory called with the input shape of one example (no batch axis): `(features,)` in the
dnn space, `(channels, height, width)` for the conv part of the cnn space, `(steps, features)` in the sequence
space; a dnn block factory that takes a `style` parameter also gets the network's `LayerStyle` (activation,
normalization, dropout). It returns an `nn.Module`; a sequence block whose forward takes `mask` also gets the
(batch, steps) mask of real steps. The block is run once on zeros when it is built, so a wrong output shape
fails there, with the block's name, instead of deep inside training.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nasforge.core import registry
from nasforge.core.errors import ConfigError

_RANK_NAMES = {1: "(batch, features)", 2: "(batch, steps, features) with the steps it was given",
               3: "(batch, channels, height, width)"}


class UserBlock(nn.Module):
    """A user's module with the shape it was checked to give; `out_features` chains dnn blocks."""

    def __init__(self, name: str, module: nn.Module, output_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.block_name = name
        self.body = module
        self.output_shape = output_shape
        self.out_features = output_shape[0]
        self.out_channels = output_shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # type: ignore[no-any-return]


def build_user_block(name: str, input_shape: Sequence[int], space: str, style: Any = None,
                     same_leading: int = 0) -> UserBlock:
    """The block `name` (a registered name or an import path) for inputs of `input_shape`, its output checked:
    of the same rank, and with the first `same_leading` axes after the batch unchanged (a sequence's steps)."""
    shape = tuple(int(s) for s in input_shape)
    factory = registry.resolve("block", name)
    try:
        wants_style = "style" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        wants_style = False
    module = factory(shape, style=style) if wants_style and style is not None else factory(shape)
    if not isinstance(module, nn.Module):
        raise ConfigError(f"{space}: block {name!r} returned {type(module).__name__}, not a torch.nn.Module")
    output = _probe(module, shape, name, space)
    expected = _RANK_NAMES[len(shape)]
    if (output.dim() != len(shape) + 1 or output.shape[0] != 2 or any(s == 0 for s in output.shape)
            or tuple(output.shape[1:1 + same_leading]) != shape[:same_leading]):
        raise ConfigError(f"{space}: block {name!r} given inputs of shape {('batch', *shape)} returned shape "
                          f"{('batch', *output.shape[1:])}; a {space} block must return {expected}")
    return UserBlock(name, module, tuple(int(s) for s in output.shape[1:]))


def _probe(module: nn.Module, shape: tuple[int, ...], name: str, space: str) -> torch.Tensor:
    """One forward pass on two zero examples, in eval mode (batch norm keeps its statistics)."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            x = torch.zeros(2, *shape)
            output = module(x, mask=torch.ones(2, shape[0], dtype=torch.bool)) if takes_mask(module) else module(x)
    except Exception as exc:  # the user's code: report which block and which shape
        raise ConfigError(f"{space}: block {name!r} failed on inputs of shape {('batch', *shape)}: "
                          f"{type(exc).__name__}: {exc}") from exc
    finally:
        module.train(was_training)
    if not isinstance(output, torch.Tensor):
        raise ConfigError(f"{space}: block {name!r} returned {type(output).__name__}, not a tensor")
    return output


def takes_mask(module: nn.Module) -> bool:
    try:
        return "mask" in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False
