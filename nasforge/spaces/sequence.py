"""Model Search's sequence space: a stack of recurrent, convolutional and Transformer blocks whose depth the
search grows, then a pooling over the (unpadded) steps and a classifier.

Token layout: five training/head tokens (HYPERPARAMETERS: pooling, positional encoding, dropout, optimizer,
learning rate), one `depth` token, then `depth` tokens that share the decision name "block" (one controller
head). Any block may follow any other, so mixed stacks such as conv > transformer > lstm are in the space and
the search itself answers "LSTM, Transformer or both". The input is what the sequence provider makes:
(steps, channels + 1) with the mask as the last channel; the network (nasforge.models.sequence) keeps
padding out of every block and out of the pooling. The module stays torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture, Decision, JSONDict
from nasforge.spaces.base import InvalidArchitecture, TokenSpace
from nasforge.spaces.user_blocks import block_index, canonical_blocks

if TYPE_CHECKING:
    import torch

    from nasforge.data.base import DataSpec

# (name, choices, default used when a hand-written description leaves it out); never reorder a vocabulary.
HYPERPARAMETERS: tuple[tuple[str, tuple[Any, ...], Any], ...] = (
    ("pooling", ("attention", "mean", "last"), "attention"),
    ("positional", ("sinusoidal", "learned", "none"), "sinusoidal"),
    ("dropout", (0.0, 0.1, 0.2, 0.3), 0.1),
    ("optimizer", ("adam", "adamw"), "adam"),
    ("learning_rate", (3e-4, 1e-3, 3e-3, 1e-2), 1e-3),
)
HP_NAMES: tuple[str, ...] = tuple(name for name, _, _ in HYPERPARAMETERS)
N_HP = len(HYPERPARAMETERS)
_POSITIONAL = HP_NAMES.index("positional")

# Token order of the "block" decision: append new blocks, never reorder (stored tokens depend on it).
# lstm/bilstm/gru_<hidden> (bilstm outputs 2 x hidden); conv<kernel>_<filters>, dil<d> dilated, res_ residual
# (a 1x1 projection when the width changes); transformer_<width>_h<heads> (feed-forward 2 x width).
RECURRENT_BLOCKS: tuple[str, ...] = ("lstm_16", "lstm_64", "lstm_128", "bilstm_16", "bilstm_64",
                                     "gru_16", "gru_64", "gru_128")
CONV_BLOCKS: tuple[str, ...] = ("conv3_16", "conv3_64", "conv5_64", "conv7_64", "conv3_dil2_64", "conv3_dil4_64",
                                "res_conv3_64", "res_conv3_dil2_64", "res_conv5_128")
TRANSFORMER_BLOCKS: tuple[str, ...] = ("transformer_16_h2", "transformer_64_h2", "transformer_64_h4",
                                       "transformer_128_h4", "transformer_128_h8")
BLOCK_VOCABULARY: tuple[str, ...] = ("identity", *RECURRENT_BLOCKS, *CONV_BLOCKS, *TRANSFORMER_BLOCKS)
# Built-in blocks added after user blocks existed: their tokens come after a study's user blocks, so the stored
# tokens of a study with user blocks keep their meaning. inception_<filters>: InceptionTime's module
# (bottleneck, parallel k9/k19/k39 convolutions and a max-pool branch, 4 x filters out, masked batch norm,
# residual shortcut), the strongest known block on the UCR sets.
INCEPTION_BLOCKS: tuple[str, ...] = ("inception_16", "inception_32")
BUILTIN_BLOCKS: tuple[str, ...] = (*BLOCK_VOCABULARY, *INCEPTION_BLOCKS)
IDENTITY = 0
BLOCK_FAMILIES = ("lstm", "bilstm", "gru", "conv", "inception", "transformer")


def block_family(name: str) -> str:
    """lstm, bilstm, gru, conv, inception or transformer (identity for identity, user for a user block's import
    path): what the bench tallies."""
    if name == "identity":
        return name
    if ":" in name:
        return "user"
    head = name.split("_")[0]
    if head == "res":
        return "conv"
    return "conv" if head.startswith("conv") else head


def _index_of(choices: Sequence[Any], value: Any, what: str) -> int:
    for i, choice in enumerate(choices):
        if isinstance(choice, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
            if abs(choice - float(value)) <= 1e-9 * max(1.0, abs(choice)):
                return i
        elif choice == value:
            return i
    raise InvalidArchitecture(f"sequence: {what} {value!r} is not one of {list(choices)}")


class SequenceSpace(TokenSpace):
    """Stacks of `min_depth`..`max_depth` sequence blocks; `blocks` restricts the vocabulary and `fixed` pins
    hyper-parameters (both only mask choices, so stored tokens keep their meaning). `user_blocks` (registered
    block names or import paths, stored as import paths) join the vocabulary after BLOCK_VOCABULARY and before
    INCEPTION_BLOCKS (nasforge.models.user_blocks)."""

    name = "sequence"

    def __init__(self, min_depth: int = 1, max_depth: int = 4, blocks: Sequence[str] | None = None,
                 fixed: dict[str, Any] | None = None, user_blocks: Sequence[str] | None = None) -> None:
        if not 1 <= int(min_depth) <= int(max_depth):
            raise ConfigError(f"sequence: need 1 <= min_depth <= max_depth, got min_depth={min_depth}, "
                              f"max_depth={max_depth}")
        self.min_depth = int(min_depth)
        self.max_depth = int(max_depth)
        self.fixed = dict(fixed) if fixed is not None else None
        self.user_blocks = canonical_blocks("sequence", user_blocks, BUILTIN_BLOCKS)
        self.vocabulary: tuple[str, ...] = (*BLOCK_VOCABULARY, *self.user_blocks, *INCEPTION_BLOCKS)
        given = list(blocks) if blocks is not None else None
        indices = [block_index(self.vocabulary, b) for b in given or []]
        if None in indices or (given is not None and not given):
            raise ConfigError(f"sequence: blocks must name some of: {', '.join(self.vocabulary)} (got {given})")
        self.blocks = [self.vocabulary[i] for i in indices if i is not None] if given is not None else None
        self._block_options = (tuple(sorted({i for i in indices if i is not None})) if given is not None
                               else tuple(range(len(self.vocabulary))))
        self._hp_options: list[tuple[int, ...] | None] = [None] * N_HP
        for key, value in (self.fixed or {}).items():
            if key not in HP_NAMES:
                raise ConfigError(f"sequence: cannot fix {key!r}; hyper-parameters are: {', '.join(HP_NAMES)}")
            i = HP_NAMES.index(key)
            try:
                self._hp_options[i] = (_index_of(HYPERPARAMETERS[i][1], value, key),)
            except InvalidArchitecture as exc:
                raise ConfigError(str(exc)) from exc
        self._depths = tuple(range(self.min_depth, self.max_depth + 1))

    # ---- the token walk -------------------------------------------------------------
    def decision(self, prefix: Sequence[int]) -> Decision | None:
        i = len(prefix)
        if i < N_HP:
            name, choices, _ = HYPERPARAMETERS[i]
            return Decision(name, choices, allowed=self._hp_options[i])
        if i == N_HP:
            return Decision("depth", self._depths)
        layer = i - N_HP - 1
        if layer < self._depths[prefix[N_HP]]:
            return Decision("block", self.vocabulary, allowed=self._block_options, layer=layer)
        return None

    def config(self) -> JSONDict:
        config: JSONDict = {"min_depth": self.min_depth, "max_depth": self.max_depth, "blocks": self.blocks,
                            "fixed": self.fixed}
        if self.user_blocks:  # only when given, so the configs of stored studies stay what they were
            config["user_blocks"] = list(self.user_blocks)
        return config

    # ---- views of an architecture ------------------------------------------------------
    def hyperparameters(self, arch: Architecture) -> JSONDict:
        self._check(arch)
        return {name: choices[t] for (name, choices, _), t in zip(HYPERPARAMETERS, arch.tokens[:N_HP])}

    def block_names(self, arch: Architecture) -> list[str]:
        self._check(arch)
        return [self.vocabulary[t] for t in self._block_tokens(arch)]

    def depth(self, arch: Architecture) -> int:
        """Number of blocks, identity blocks included (what `grow` and max_depth count)."""
        return int(self._depths[arch.tokens[N_HP]])

    def training_hparams(self, arch: Architecture) -> JSONDict:
        """The optimizer and learning rate searched here; gradients clipped at 1 (recurrences need it)."""
        hp = self.hyperparameters(arch)
        return {"optimizer": hp["optimizer"], "learning_rate": hp["learning_rate"], "grad_clip": 1.0}

    def key(self, arch: Architecture) -> str:
        """Identity blocks are left out, and so is the positional encoding of a stack without a Transformer
        block (it changes nothing there)."""
        names = [self.vocabulary[t] for t in self._block_tokens(arch)]
        hp = [str(t) for t in arch.tokens[:N_HP]]
        if not any(block_family(n) == "transformer" for n in names):
            hp[_POSITIONAL] = "-"
        blocks = ".".join(str(t) for t in self._block_tokens(arch) if t != IDENTITY)
        return f"{self.name}:{'.'.join(hp)}:{blocks}"

    def describe(self, arch: Architecture) -> JSONDict:
        return {**self.hyperparameters(arch), "blocks": self.block_names(arch)}

    def summary(self, arch: Architecture) -> str:
        hp = self.hyperparameters(arch)
        names = self.block_names(arch)
        pos = f" {hp['positional']} pos" if any(block_family(n) == "transformer" for n in names) else ""
        return (f"{hp['optimizer']} lr{hp['learning_rate']:g} d{hp['dropout']:g}{pos}: {' > '.join(names)} "
                f"> {hp['pooling']} pool")

    # ---- JSON ------------------------------------------------------------------------
    def parse(self, description: JSONDict) -> Architecture:
        if "blocks" not in description:
            raise InvalidArchitecture("sequence: architecture JSON has neither 'tokens' nor 'blocks'")
        unknown = set(description) - set(HP_NAMES) - {"blocks", "space", "depth"}
        if unknown:
            raise InvalidArchitecture(f"sequence: unknown keys {sorted(unknown)} in architecture description")
        tokens = []
        for i, (name, choices, default) in enumerate(HYPERPARAMETERS):
            pinned = self._hp_options[i]
            if name in description:
                tokens.append(_index_of(choices, description[name], name))
            else:
                tokens.append(pinned[0] if pinned is not None else _index_of(choices, default, name))
        blocks = []
        for b in description["blocks"]:
            index = block_index(self.vocabulary, str(b))
            if index is None:
                raise InvalidArchitecture(f"sequence: block {b!r} is not one of {list(self.vocabulary)}")
            blocks.append(index)
        return self._with_blocks(tokens, blocks)

    # ---- moves for Model Search ----------------------------------------------------------
    def grow(self, arch: Architecture, rng: np.random.Generator) -> Architecture | None:
        """Insert one random non-identity block at a random position (the end included); None at max depth."""
        blocks = self._block_tokens(arch)
        if len(blocks) >= self.max_depth:
            return None
        options = [b for b in self._block_options if b != IDENTITY] or list(self._block_options)
        block = int(options[int(rng.integers(len(options)))])
        position = int(rng.integers(len(blocks) + 1))
        return self._with_blocks(list(arch.tokens[:N_HP]), [*blocks[:position], block, *blocks[position:]])

    # ---- helpers -----------------------------------------------------------------------
    def _check(self, arch: Architecture) -> None:
        if arch.space != self.name:
            raise InvalidArchitecture(f"architecture is for space {arch.space!r}, not {self.name!r}")

    def _block_tokens(self, arch: Architecture) -> list[int]:
        return [int(t) for t in arch.tokens[N_HP + 1:N_HP + 1 + self.depth(arch)]]

    def _with_blocks(self, hp_tokens: list[int], blocks: list[int]) -> Architecture:
        if not self.min_depth <= len(blocks) <= self.max_depth:
            raise InvalidArchitecture(f"sequence: {len(blocks)} blocks, but depth must be in "
                                      f"[{self.min_depth}, {self.max_depth}]")
        return self.assemble([*hp_tokens, self._depths.index(len(blocks)), *blocks])

    # ---- drawing ---------------------------------------------------------------------
    def layer_diagram(self, arch: Architecture) -> JSONDict:
        """The stack top to bottom for `show --draw` (nasforge.report.drawing)."""
        hp = self.hyperparameters(arch)
        names = [n for n in self.block_names(arch) if n != "identity"]
        layers: list[JSONDict] = []
        positioned = False
        for name in names:
            family = block_family(name)
            if family == "transformer" and not positioned and hp["positional"] != "none":
                layers.append({"label": f"{hp['positional']} positions", "detail": "added once", "kind": "head"})
                positioned = True
            layers.append({"label": _block_label(name), "detail": _block_detail(name), "kind": family})
        layers.append({"label": f"{hp['pooling']} pooling", "detail": "real steps only (mask)", "kind": "head"})
        return {"input": "sequence (steps × channels + mask)", "layers": layers, "output": "classifier",
                "caption": f"dropout {hp['dropout']:g}; {hp['optimizer']}, lr {hp['learning_rate']:g}; "
                           "padding is masked out of every block and of the pooling"}

    # ---- PyTorch ---------------------------------------------------------------------
    def build(self, arch: Architecture, data: DataSpec) -> torch.nn.Module:
        from nasforge.models.sequence import SequenceNetwork

        if len(data.input_shape) != 2 or data.input_shape[1] < 2:
            raise ConfigError(f"sequence: the space needs (steps, channels + mask) inputs from the sequence "
                              f"provider, got input shape {tuple(data.input_shape)}")
        hp = self.hyperparameters(arch)
        return SequenceNetwork(self.block_names(arch), steps=int(data.input_shape[0]),
                               channels=int(data.input_shape[1]) - 1, outputs=max(1, int(data.num_outputs)),
                               pooling=str(hp["pooling"]), positional=str(hp["positional"]),
                               dropout=float(hp["dropout"]), per_step=bool(data.per_step))


def _block_label(name: str) -> str:
    family = block_family(name)
    if family == "user":
        return name.rpartition(":")[2]
    parts = name.split("_")
    if family in ("lstm", "bilstm", "gru"):
        return {"lstm": "LSTM", "bilstm": "bidirectional LSTM", "gru": "GRU"}[family]
    if family == "transformer":
        return "Transformer encoder"
    if family == "inception":
        return "Inception module k9/k19/k39 + max-pool"
    kernel = parts[1 if parts[0] == "res" else 0][len("conv"):]
    dilated = [p for p in parts if p.startswith("dil")]
    label = f"conv 1-D k{kernel}" + (f" dilation {dilated[0][3:]}" if dilated else "")
    return ("residual " if parts[0] == "res" else "") + label


def _block_detail(name: str) -> str:
    parts = name.split("_")
    family = block_family(name)
    if family == "user":
        return name.rpartition(":")[0]
    if family == "transformer":
        return f"width {parts[1]}, {parts[2][1:]} heads"
    if family == "bilstm":
        return f"2 × {parts[1]} units"
    if family == "inception":
        return f"4 × {parts[1]} filters, batch norm, residual"
    if family in ("lstm", "gru"):
        return f"{parts[1]} units"
    return f"{parts[-1]} filters"
