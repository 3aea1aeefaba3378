"""Model Search's dense space: training hyper-parameters, a depth, then one block per layer.

Token layout: seven hyper-parameter tokens, one `depth` token, then `depth` tokens that all
share the decision name "block" (one controller head). The module stays torch-free; the
builder imports nasforge.models.dense only when a network is built.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture, Decision, JSONDict
from nasforge.spaces.base import InvalidArchitecture, TokenSpace

if TYPE_CHECKING:
    import torch

    from nasforge.data.base import DataSpec

# (name, choices, default used when a hand-written description leaves it out)
HYPERPARAMETERS: tuple[tuple[str, tuple[Any, ...], Any], ...] = (
    ("activation", ("relu", "tanh", "elu", "selu", "silu"), "relu"),
    ("normalization", ("none", "batch", "layer"), "none"),
    ("dropout", (0.0, 0.1, 0.2, 0.3, 0.5), 0.0),
    ("optimizer", ("adam", "adamw", "sgd", "rmsprop"), "adam"),
    ("learning_rate", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2), 1e-3),
    ("lr_decay", (1.0, 0.98, 0.95, 0.9), 1.0),
    ("grad_clip", (None, 1.0, 5.0), None),
)
HP_NAMES: tuple[str, ...] = tuple(name for name, _, _ in HYPERPARAMETERS)
N_HP = len(HYPERPARAMETERS)

# Token order of the "block" decision: append new blocks, never reorder (stored tokens depend on it).
BLOCK_VOCABULARY: tuple[str, ...] = (
    "identity",
    "fc_64", "fc_128", "fc_256", "fc_512", "fc_1024",
    "res_fc_64", "res_fc_128", "res_fc_256", "res_fc_512",
    "lowrank_256_r16", "lowrank_512_r32", "lowrank_1024_r32",
    "bottleneck_256_64", "bottleneck_512_128", "bottleneck_1024_128",
)
IDENTITY = BLOCK_VOCABULARY.index("identity")

_NORM_SHORT = {"none": "", "batch": "bn", "layer": "ln"}


def _index_of(choices: Sequence[Any], value: Any, what: str) -> int:
    """Index of `value` in `choices`, matching floats by closeness so 0.001 and 1e-3 agree."""
    for i, choice in enumerate(choices):
        if choice is None or value is None:
            if choice is value:
                return i
        elif isinstance(choice, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isclose(choice, float(value), rel_tol=1e-6, abs_tol=1e-12):
                return i
        elif choice == value:
            return i
    raise InvalidArchitecture(f"dnn: {what} {value!r} is not one of {list(choices)}")


def _short_float(value: float) -> str:
    """3e-3 rather than 0.003 or 3e-03, for summaries."""
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


class DNNSpace(TokenSpace):
    """Dense networks for tabular (or flattened) inputs, searched with their training hyper-parameters.

    `blocks` restricts the block vocabulary and `fixed` pins hyper-parameters (e.g.
    {"optimizer": "adam"}); both only mask choices, so token vocabularies stay the same and a
    controller trained on one configuration still reads another.
    """

    name = "dnn"

    def __init__(self, min_depth: int = 1, max_depth: int = 6, blocks: Sequence[str] | None = None,
                 fixed: dict[str, Any] | None = None) -> None:
        if not 1 <= int(min_depth) <= int(max_depth):
            raise ConfigError(f"dnn: need 1 <= min_depth <= max_depth, got min_depth={min_depth}, "
                              f"max_depth={max_depth}")
        self.min_depth = int(min_depth)
        self.max_depth = int(max_depth)
        self.blocks = list(blocks) if blocks is not None else None
        self.fixed = dict(fixed) if fixed is not None else None
        unknown = [b for b in self.blocks or [] if b not in BLOCK_VOCABULARY]
        if unknown:
            raise ConfigError(f"dnn: unknown blocks {unknown}; choose from: {', '.join(BLOCK_VOCABULARY)}")
        if self.blocks is not None and not self.blocks:
            raise ConfigError("dnn: 'blocks' must name at least one block")
        self._block_options = (tuple(sorted({BLOCK_VOCABULARY.index(b) for b in self.blocks}))
                               if self.blocks is not None else None)
        self._hp_options: list[tuple[int, ...] | None] = [None] * N_HP
        for key, value in (self.fixed or {}).items():
            if key not in HP_NAMES:
                raise ConfigError(f"dnn: cannot fix {key!r}; hyper-parameters are: {', '.join(HP_NAMES)}")
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
        depth = self._depths[prefix[N_HP]]
        layer = i - N_HP - 1
        if layer < depth:
            return Decision("block", BLOCK_VOCABULARY, allowed=self._block_options, layer=layer)
        return None

    def config(self) -> JSONDict:
        return {"min_depth": self.min_depth, "max_depth": self.max_depth, "blocks": self.blocks,
                "fixed": self.fixed}

    # ---- views of an architecture ------------------------------------------------------
    def hyperparameters(self, arch: Architecture) -> JSONDict:
        self._check(arch)
        return {name: choices[t] for (name, choices, _), t in zip(HYPERPARAMETERS, arch.tokens[:N_HP])}

    def block_names(self, arch: Architecture) -> list[str]:
        self._check(arch)
        return [BLOCK_VOCABULARY[t] for t in arch.tokens[N_HP + 1:]]

    def depth(self, arch: Architecture) -> int:
        """Number of blocks, identity blocks included (what `grow` and max_depth count)."""
        return len(arch.tokens) - N_HP - 1

    def training_hparams(self, arch: Architecture) -> JSONDict:
        """What the train evaluator reads to set up its optimizer (other spaces fall back to Adam)."""
        hp = self.hyperparameters(arch)
        return {"optimizer": hp["optimizer"], "learning_rate": hp["learning_rate"],
                "lr_decay": hp["lr_decay"], "grad_clip": hp["grad_clip"]}

    def key(self, arch: Architecture) -> str:
        """Identity blocks change nothing, so they are left out: fc_256 > identity equals fc_256."""
        hp = ".".join(str(t) for t in arch.tokens[:N_HP])
        blocks = ".".join(str(t) for t in arch.tokens[N_HP + 1:] if t != IDENTITY)
        return f"{self.name}:{hp}:{blocks}"

    def describe(self, arch: Architecture) -> JSONDict:
        return {**self.hyperparameters(arch), "blocks": self.block_names(arch)}

    def summary(self, arch: Architecture) -> str:
        hp = self.hyperparameters(arch)
        style = [hp["activation"]]
        if _NORM_SHORT[hp["normalization"]]:
            style.append(_NORM_SHORT[hp["normalization"]])
        if hp["dropout"]:
            style.append(f"d{hp['dropout']:g}")
        train = [hp["optimizer"], f"lr{_short_float(hp['learning_rate'])}"]
        if hp["lr_decay"] != 1.0:
            train.append(f"decay{hp['lr_decay']:g}")
        if hp["grad_clip"] is not None:
            train.append(f"clip{hp['grad_clip']:g}")
        return f"{'|'.join(style)} {' '.join(train)}: {' > '.join(self.block_names(arch))}"

    # ---- JSON ------------------------------------------------------------------------
    def from_json(self, data: JSONDict) -> Architecture:
        """Tokens when present; otherwise the `describe()` form, bare or under "description"."""
        if data.get("space", self.name) != self.name:
            raise InvalidArchitecture(f"architecture is for space {data.get('space')!r}, not {self.name!r}")
        if "tokens" in data:
            return self.assemble(data["tokens"])
        return self.parse(data.get("description", data))

    def parse(self, description: JSONDict) -> Architecture:
        """Tokens from a readable description; missing hyper-parameters take their (or the fixed) default."""
        if "blocks" not in description:
            raise InvalidArchitecture("dnn: architecture JSON has neither 'tokens' nor 'blocks'")
        unknown = set(description) - set(HP_NAMES) - {"blocks", "space", "depth"}
        if unknown:
            raise InvalidArchitecture(f"dnn: unknown keys {sorted(unknown)} in architecture description")
        tokens: list[int] = []
        for i, (name, choices, default) in enumerate(HYPERPARAMETERS):
            pinned = self._hp_options[i]
            if name in description:
                tokens.append(_index_of(choices, description[name], name))
            else:
                tokens.append(pinned[0] if pinned is not None else _index_of(choices, default, name))
        blocks = list(description["blocks"])
        if "depth" in description and int(description["depth"]) != len(blocks):
            raise InvalidArchitecture(f"dnn: depth {description['depth']} but {len(blocks)} blocks")
        if not self.min_depth <= len(blocks) <= self.max_depth:
            raise InvalidArchitecture(f"dnn: {len(blocks)} blocks, but depth must be in "
                                      f"[{self.min_depth}, {self.max_depth}]")
        tokens.append(self._depths.index(len(blocks)))
        tokens.extend(_index_of(BLOCK_VOCABULARY, b, "block") for b in blocks)
        return self.assemble(tokens)

    # ---- moves for Model Search and evolution -----------------------------------------------
    def grow(self, arch: Architecture, rng: np.random.Generator) -> Architecture | None:
        """Insert one random non-identity block at a random position (the end included); None at max depth."""
        depth = self.depth(arch)
        if depth >= self.max_depth:
            return None
        position = int(rng.integers(depth + 1))
        return self._with_blocks(arch, _insert(self._block_tokens(arch), position, self._random_block(rng)))

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """Change one hyper-parameter or one block, or add / remove one block; always a new key when possible."""
        own_key = self.key(arch)
        child = arch
        for _ in range(20):
            child = self._mutate_once(arch, rng)
            if self.key(child) != own_key:
                return child
        return child

    def _mutate_once(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        blocks = self._block_tokens(arch)
        moves: list[tuple[str, int]] = [("hp", i) for i in range(N_HP) if self._hp_options[i] is None]
        if self._block_options is None or len(self._block_options) > 1:
            moves += [("block", j) for j in range(len(blocks))]
        if self.min_depth < self.max_depth:
            moves.append(("depth", 0))
        if not moves:
            return arch
        kind, i = moves[int(rng.integers(len(moves)))]
        if kind == "hp":
            tokens = list(arch.tokens)
            n_choices = len(HYPERPARAMETERS[i][1])
            tokens[i] = int((tokens[i] + 1 + rng.integers(n_choices - 1)) % n_choices)
            return Architecture(self.name, tuple(tokens))
        if kind == "block":
            options = [o for o in self._allowed_blocks() if o != blocks[i]]
            blocks[i] = int(options[int(rng.integers(len(options)))])
            return self._with_blocks(arch, blocks)
        grow = len(blocks) == self.min_depth or (len(blocks) < self.max_depth and rng.random() < 0.5)
        if grow:
            return self._with_blocks(arch, _insert(blocks, int(rng.integers(len(blocks) + 1)),
                                                   self._random_block(rng)))
        del blocks[int(rng.integers(len(blocks)))]
        return self._with_blocks(arch, blocks)

    # ---- helpers -----------------------------------------------------------------------
    def _check(self, arch: Architecture) -> None:
        if arch.space != self.name:
            raise InvalidArchitecture(f"architecture is for space {arch.space!r}, not {self.name!r}")

    def _allowed_blocks(self) -> tuple[int, ...]:
        return self._block_options if self._block_options is not None else tuple(range(len(BLOCK_VOCABULARY)))

    def _random_block(self, rng: np.random.Generator) -> int:
        """A block that changes the network (identity only when nothing else is allowed)."""
        options = [o for o in self._allowed_blocks() if o != IDENTITY] or list(self._allowed_blocks())
        return int(options[int(rng.integers(len(options)))])

    def _block_tokens(self, arch: Architecture) -> list[int]:
        return list(arch.tokens[N_HP + 1:])

    def _with_blocks(self, arch: Architecture, blocks: list[int]) -> Architecture:
        return self.assemble([*arch.tokens[:N_HP], self._depths.index(len(blocks)), *blocks])

    # ---- PyTorch ---------------------------------------------------------------------
    def build(self, arch: Architecture, data: DataSpec) -> torch.nn.Module:
        from nasforge.models.dense import DenseNetwork, LayerStyle

        hp = self.hyperparameters(arch)
        style = LayerStyle(hp["activation"], hp["normalization"], float(hp["dropout"]))
        return DenseNetwork(math.prod(data.input_shape), self.block_names(arch), max(1, data.num_outputs), style)


def _insert(blocks: list[int], position: int, block: int) -> list[int]:
    return [*blocks[:position], block, *blocks[position:]]
