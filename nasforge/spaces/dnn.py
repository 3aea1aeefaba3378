"""Model Search's dense space: training hyper-parameters, a depth, one block per layer, then the
tabular choices added later.

Token layout: seven hyper-parameter tokens, one `depth` token, `depth` tokens that all share the
decision name "block" (one controller head), then one token per EXTRAS entry (numeric and category
embeddings, weight decay, label smoothing, members). EXTRAS were appended after the blocks so that a
stored architecture from before them is a prefix of the new layout: `assemble` completes such a short
sequence with the extras' defaults (the old behaviour), and `key` leaves default extras out, so old
keys stay what they were. Append new extras at the end, never reorder any vocabulary. The module stays
torch-free; the builder imports nasforge.models only when a network is built.
"""

from __future__ import annotations

import math
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

# Decisions after the blocks (name, choices, default = the behaviour before they existed); see the docstring.
# numeric_embedding: ple_<bins> (piecewise-linear, quantile bins) or periodic_<sigma> (nasforge.models.tabular);
# categorical_embedding: one-hot slots as they are, or embed_<width>; weight_decay None: the evaluator's
# option; members: TabM-mini members sharing the blocks, each trained on its own loss, predictions averaged.
EXTRAS: tuple[tuple[str, tuple[Any, ...], Any], ...] = (
    ("numeric_embedding", ("none", "ple_8", "ple_16", "ple_32", "periodic_0.03", "periodic_0.1", "periodic_0.3",
                           "periodic_1"), "none"),
    ("categorical_embedding", ("onehot", "embed_4", "embed_16"), "onehot"),
    ("weight_decay", (None, 1e-5, 1e-4, 1e-3, 1e-2), None),
    ("label_smoothing", (0.0, 0.05, 0.1, 0.2), 0.0),
    ("members", (1, 4, 8), 1),
)
EXTRA_NAMES: tuple[str, ...] = tuple(name for name, _, _ in EXTRAS)
N_EXTRA = len(EXTRAS)
EXTRA_DEFAULTS: tuple[int, ...] = tuple(choices.index(default) for _, choices, default in EXTRAS)
# extras that change the network (the others only change training)
_STRUCTURAL = ("numeric_embedding", "categorical_embedding", "members")

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
    controller trained on one configuration still reads another. `user_blocks` (registered block names
    or import paths, stored as import paths) join the end of the block vocabulary
    (nasforge.models.user_blocks says what such a block is).
    """

    name = "dnn"

    def __init__(self, min_depth: int = 1, max_depth: int = 6, blocks: Sequence[str] | None = None,
                 fixed: dict[str, Any] | None = None, user_blocks: Sequence[str] | None = None) -> None:
        if not 1 <= int(min_depth) <= int(max_depth):
            raise ConfigError(f"dnn: need 1 <= min_depth <= max_depth, got min_depth={min_depth}, "
                              f"max_depth={max_depth}")
        self.min_depth = int(min_depth)
        self.max_depth = int(max_depth)
        self.fixed = dict(fixed) if fixed is not None else None
        self.user_blocks = canonical_blocks("dnn", user_blocks, BLOCK_VOCABULARY)
        self.vocabulary: tuple[str, ...] = (*BLOCK_VOCABULARY, *self.user_blocks)
        given = list(blocks) if blocks is not None else None
        indices = [block_index(self.vocabulary, b) for b in given or []]
        unknown = [b for b, i in zip(given or [], indices) if i is None]
        if unknown:
            raise ConfigError(f"dnn: unknown blocks {unknown}; choose from: {', '.join(self.vocabulary)}")
        if given is not None and not given:
            raise ConfigError("dnn: 'blocks' must name at least one block")
        self.blocks = [self.vocabulary[i] for i in indices if i is not None] if given is not None else None
        self._block_options = (tuple(sorted({i for i in indices if i is not None}))
                               if given is not None else None)
        self._hp_options: list[tuple[int, ...] | None] = [None] * N_HP
        self._extra_options: list[tuple[int, ...] | None] = [None] * N_EXTRA
        for key, value in (self.fixed or {}).items():
            if key not in HP_NAMES and key not in EXTRA_NAMES:
                raise ConfigError(f"dnn: cannot fix {key!r}; hyper-parameters are: "
                                  f"{', '.join(HP_NAMES + EXTRA_NAMES)}")
            table, options, i = ((HYPERPARAMETERS, self._hp_options, HP_NAMES.index(key)) if key in HP_NAMES
                                 else (EXTRAS, self._extra_options, EXTRA_NAMES.index(key)))
            try:
                options[i] = (_index_of(table[i][1], value, key),)
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
            return Decision("block", self.vocabulary, allowed=self._block_options, layer=layer)
        extra = layer - depth
        if extra < N_EXTRA:
            name, choices, _ = EXTRAS[extra]
            return Decision(name, choices, allowed=self._extra_options[extra])
        return None

    def assemble(self, tokens: Sequence[int]) -> Architecture:
        """Also takes a sequence stored before (some of) the extras existed: they get their defaults."""
        tokens = [int(t) for t in tokens]
        if len(tokens) > N_HP and 0 <= tokens[N_HP] < len(self._depths):
            core = N_HP + 1 + self._depths[tokens[N_HP]]
            if core <= len(tokens) < core + N_EXTRA:
                tokens += [self._extra_default(j) for j in range(len(tokens) - core, N_EXTRA)]
        return super().assemble(tokens)

    def _extra_default(self, j: int) -> int:
        pinned = self._extra_options[j]
        return pinned[0] if pinned is not None else EXTRA_DEFAULTS[j]

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

    def extras(self, arch: Architecture) -> JSONDict:
        """The choices after the blocks (EXTRAS), by name."""
        self._check(arch)
        return {name: choices[t] for (name, choices, _), t in zip(EXTRAS, self._extra_tokens(arch))}

    def block_names(self, arch: Architecture) -> list[str]:
        self._check(arch)
        return [self.vocabulary[t] for t in self._block_tokens(arch)]

    def depth(self, arch: Architecture) -> int:
        """Number of blocks, identity blocks included (what `grow` and max_depth count)."""
        return int(self._depths[arch.tokens[N_HP]])

    def training_hparams(self, arch: Architecture) -> JSONDict:
        """What the train evaluator reads to set up its optimizer (other spaces fall back to Adam);
        weight_decay None leaves the evaluator's own."""
        hp = self.hyperparameters(arch)
        extras = self.extras(arch)
        return {"optimizer": hp["optimizer"], "learning_rate": hp["learning_rate"],
                "lr_decay": hp["lr_decay"], "grad_clip": hp["grad_clip"], "weight_decay": extras["weight_decay"],
                "label_smoothing": extras["label_smoothing"]}

    def key(self, arch: Architecture) -> str:
        """Identity blocks change nothing, so they are left out: fc_256 > identity equals fc_256. Extras at
        their defaults are left out too, so an architecture keeps the key it had before they existed."""
        hp = ".".join(str(t) for t in arch.tokens[:N_HP])
        blocks = ".".join(str(t) for t in self._block_tokens(arch) if t != IDENTITY)
        extras = self._extra_tokens(arch)
        tail = "" if tuple(extras) == EXTRA_DEFAULTS else ":" + ".".join(str(t) for t in extras)
        return f"{self.name}:{hp}:{blocks}{tail}"

    def describe(self, arch: Architecture) -> JSONDict:
        return {**self.hyperparameters(arch), "blocks": self.block_names(arch), **self.extras(arch)}

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
        extras = self.extras(arch)
        if extras["weight_decay"] is not None:
            train.append(f"wd{_short_float(extras['weight_decay'])}")
        if extras["label_smoothing"]:
            train.append(f"ls{extras['label_smoothing']:g}")
        front = [str(extras[n]) for n in ("numeric_embedding", "categorical_embedding")
                 if extras[n] not in ("none", "onehot")]
        if extras["members"] > 1:
            front.append(f"x{extras['members']}")
        inputs = f"[{' '.join(front)}] " if front else ""
        return f"{'|'.join(style)} {' '.join(train)}: {inputs}{' > '.join(self.block_names(arch))}"

    # ---- JSON ------------------------------------------------------------------------
    def parse(self, description: JSONDict) -> Architecture:
        """Tokens from a readable description; missing hyper-parameters take their (or the fixed) default."""
        if "blocks" not in description:
            raise InvalidArchitecture("dnn: architecture JSON has neither 'tokens' nor 'blocks'")
        unknown = set(description) - set(HP_NAMES) - set(EXTRA_NAMES) - {"blocks", "space", "depth"}
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
        for b in blocks:
            index = block_index(self.vocabulary, str(b))
            if index is None:
                raise InvalidArchitecture(f"dnn: block {b!r} is not one of {list(self.vocabulary)}")
            tokens.append(index)
        for j, (name, choices, _) in enumerate(EXTRAS):
            tokens.append(_index_of(choices, description[name], name) if name in description
                          else self._extra_default(j))
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
        moves += [("extra", j) for j in range(N_EXTRA) if self._extra_options[j] is None]
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
        if kind == "extra":
            extras = self._extra_tokens(arch)
            n_choices = len(EXTRAS[i][1])
            extras[i] = int((extras[i] + 1 + rng.integers(n_choices - 1)) % n_choices)
            return self.assemble([*arch.tokens[:N_HP + 1], *blocks, *extras])
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
        return self._block_options if self._block_options is not None else tuple(range(len(self.vocabulary)))

    def _random_block(self, rng: np.random.Generator) -> int:
        """A block that changes the network (identity only when nothing else is allowed)."""
        options = [o for o in self._allowed_blocks() if o != IDENTITY] or list(self._allowed_blocks())
        return int(options[int(rng.integers(len(options)))])

    def _block_tokens(self, arch: Architecture) -> list[int]:
        return list(arch.tokens[N_HP + 1:N_HP + 1 + self.depth(arch)])

    def _extra_tokens(self, arch: Architecture) -> list[int]:
        return list(arch.tokens[N_HP + 1 + self.depth(arch):])

    def _with_blocks(self, arch: Architecture, blocks: list[int]) -> Architecture:
        return self.assemble([*arch.tokens[:N_HP], self._depths.index(len(blocks)), *blocks,
                              *self._extra_tokens(arch)])

    # ---- PyTorch ---------------------------------------------------------------------
    def build(self, arch: Architecture, data: DataSpec) -> torch.nn.Module:
        """A plain DenseNetwork while the structural extras are at their defaults (so checkpoints from
        before them load), else a TabularNetwork (embeddings, members)."""
        from nasforge.models.dense import DenseNetwork, LayerStyle

        hp = self.hyperparameters(arch)
        extras = self.extras(arch)
        style = LayerStyle(hp["activation"], hp["normalization"], float(hp["dropout"]))
        outputs = max(1, data.num_outputs)
        if all(extras[n] == EXTRAS[EXTRA_NAMES.index(n)][2] for n in _STRUCTURAL):
            return DenseNetwork(math.prod(data.input_shape), self.block_names(arch), outputs, style)
        from nasforge.models.tabular import TabularNetwork

        return TabularNetwork(data, self.block_names(arch), outputs, style, numeric=extras["numeric_embedding"],
                              categorical=extras["categorical_embedding"], members=int(extras["members"]))


def _insert(blocks: list[int], position: int, block: int) -> list[int]:
    return [*blocks[:position], block, *blocks[position:]]
