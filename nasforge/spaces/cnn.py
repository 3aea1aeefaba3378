"""Model Search's convolutional space: a tower of blocks whose depth the search grows.

Token layout (as in the dnn space): one `depth` token, then `depth` tokens that share the
decision name "block". Conv blocks (plain, factorized 1x7-7x1, downsampling, residual,
pooling) come first; once a dense block is chosen only dense blocks (or identity) may follow,
because the tower global-average-pools into its dense part. `grow` inserts one block where it
keeps that order, which is what the `model_search` strategy uses to deepen its beam.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture, Decision, JSONDict
from nasforge.spaces.base import InvalidArchitecture, TokenSpace
from nasforge.spaces.user_blocks import block_index, canonical_blocks

if TYPE_CHECKING:
    import torch

    from nasforge.data.base import DataSpec

# Token order of the "block" decision: append new blocks, never reorder (stored tokens depend on it).
CONV_BLOCK_NAMES: tuple[str, ...] = (
    "conv_3x3_16", "conv_3x3_32", "conv_3x3_64",
    "conv_5x5_16", "conv_5x5_32", "conv_5x5_64",
    "conv_1x7_7x1_32", "conv_1x7_7x1_64",
    "downsample_conv_32", "downsample_conv_64", "downsample_conv_128",
    "res_conv_16", "res_conv_32", "res_conv_64",
    "max_pool_3x3", "avg_pool_3x3",
)
DENSE_BLOCK_NAMES: tuple[str, ...] = ("fc_64", "fc_128", "fc_256", "fc_512", "res_fc_64", "res_fc_128",
                                      "res_fc_256")
BLOCK_VOCABULARY: tuple[str, ...] = ("identity", *CONV_BLOCK_NAMES, *DENSE_BLOCK_NAMES)
IDENTITY = 0
_DENSE = frozenset(BLOCK_VOCABULARY.index(b) for b in DENSE_BLOCK_NAMES)


class CNNSpace(TokenSpace):
    """Conv-then-dense towers of `min_depth`..`max_depth` blocks; `blocks` restricts the vocabulary (a mask).

    `user_blocks` (registered block names or import paths, stored as import paths) join the end of the
    vocabulary as conv blocks: images in, images out, placed before the dense part
    (nasforge.models.user_blocks)."""

    name = "cnn"

    def __init__(self, min_depth: int = 1, max_depth: int = 6, blocks: Sequence[str] | None = None,
                 user_blocks: Sequence[str] | None = None) -> None:
        if not 1 <= int(min_depth) <= int(max_depth):
            raise ConfigError(f"cnn: need 1 <= min_depth <= max_depth, got min_depth={min_depth}, "
                              f"max_depth={max_depth}")
        self.min_depth = int(min_depth)
        self.max_depth = int(max_depth)
        self.user_blocks = canonical_blocks("cnn", user_blocks, BLOCK_VOCABULARY)
        self.vocabulary: tuple[str, ...] = (*BLOCK_VOCABULARY, *self.user_blocks)
        given = list(blocks) if blocks is not None else None
        indices = [block_index(self.vocabulary, b) for b in given or []]
        if None in indices or (given is not None and not given):
            raise ConfigError(f"cnn: blocks must name some of: {', '.join(self.vocabulary)} (got {given})")
        self.blocks = [self.vocabulary[i] for i in indices if i is not None] if given is not None else None
        allowed = (sorted({i for i in indices if i is not None}) if given is not None
                   else list(range(len(self.vocabulary))))
        self._any = tuple(allowed)
        self._after_dense = tuple(b for b in allowed if b in _DENSE or b == IDENTITY) or self._any
        self._depths = tuple(range(self.min_depth, self.max_depth + 1))

    # ---- the token walk -------------------------------------------------------------
    def decision(self, prefix: Sequence[int]) -> Decision | None:
        if not prefix:
            return Decision("depth", self._depths)
        depth = self._depths[prefix[0]]
        layer = len(prefix) - 1
        if layer >= depth:
            return None
        dense_seen = any(t in _DENSE for t in prefix[1:])
        return Decision("block", self.vocabulary, allowed=self._after_dense if dense_seen else self._any,
                        layer=layer)

    def config(self) -> JSONDict:
        config: JSONDict = {"min_depth": self.min_depth, "max_depth": self.max_depth, "blocks": self.blocks}
        if self.user_blocks:  # only when given, so the configs of stored studies stay what they were
            config["user_blocks"] = list(self.user_blocks)
        return config

    # ---- views -------------------------------------------------------------------------
    def block_names(self, arch: Architecture) -> list[str]:
        return [self.vocabulary[t] for t in arch.tokens[1:]]

    def depth(self, arch: Architecture) -> int:
        """Number of blocks, identity blocks included (what `grow` and max_depth count)."""
        return len(arch.tokens) - 1

    def key(self, arch: Architecture) -> str:
        """Identity blocks change nothing, so they are left out."""
        return f"{self.name}:" + ".".join(str(t) for t in arch.tokens[1:] if t != IDENTITY)

    def describe(self, arch: Architecture) -> JSONDict:
        return {"blocks": self.block_names(self.assemble(arch.tokens))}

    def summary(self, arch: Architecture) -> str:
        return " > ".join(self.block_names(arch))

    def from_json(self, data: JSONDict) -> Architecture:
        """Tokens when present, else `{"blocks": [...]}` (bare or under "description")."""
        if data.get("space", self.name) != self.name:
            raise InvalidArchitecture(f"architecture is for space {data.get('space')!r}, not {self.name!r}")
        if "tokens" in data:
            return self.assemble(data["tokens"])
        desc = data.get("description", data)
        if "blocks" not in desc:
            raise InvalidArchitecture("cnn: architecture JSON has neither 'tokens' nor 'blocks'")
        return self._with_blocks([self._index(b) for b in desc["blocks"]])

    # ---- moves for Model Search ----------------------------------------------------------
    def grow(self, arch: Architecture, rng: np.random.Generator) -> Architecture | None:
        """Insert one random non-identity block where the conv-then-dense order allows; None at max depth."""
        blocks = list(arch.tokens[1:])
        if len(blocks) >= self.max_depth:
            return None
        options = [b for b in self._any if b != IDENTITY] or list(self._any)
        block = int(options[int(rng.integers(len(options)))])
        dense_at = [i for i, t in enumerate(blocks) if t in _DENSE]
        conv_at = [i for i, t in enumerate(blocks) if t not in _DENSE and t != IDENTITY]
        if block in _DENSE:  # after the last conv block
            low, high = (conv_at[-1] + 1 if conv_at else 0), len(blocks)
        else:  # before the first dense block
            low, high = 0, (dense_at[0] if dense_at else len(blocks))
        position = int(rng.integers(low, high + 1))
        return self._with_blocks([*blocks[:position], block, *blocks[position:]])

    def _with_blocks(self, blocks: list[int]) -> Architecture:
        if not self.min_depth <= len(blocks) <= self.max_depth:
            raise InvalidArchitecture(f"cnn: {len(blocks)} blocks, but depth must be in "
                                      f"[{self.min_depth}, {self.max_depth}]")
        return self.assemble([self._depths.index(len(blocks)), *blocks])

    def _index(self, name: str) -> int:
        index = block_index(self.vocabulary, name)
        if index is None:
            raise InvalidArchitecture(f"cnn: unknown block {name!r}")
        return index

    # ---- PyTorch ---------------------------------------------------------------------
    def build(self, arch: Architecture, data: DataSpec) -> torch.nn.Module:
        from nasforge.models.networks import ConvTower, image_shape

        channels, height, width = image_shape(data.input_shape, self.name)
        return ConvTower(self.block_names(self.assemble(arch.tokens)), channels, int(data.num_outputs),
                         image_size=(height, width))
