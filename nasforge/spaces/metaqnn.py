"""MetaQNN's layer states (Baker et al., 2017): a chain of conv, pool and fully connected layers.

Every token is one "layer" decision over a fixed vocabulary of layer states; the paper's
transition rules are `allowed` masks computed from the prefix, which is exactly the state a
Q-learner keeps:

* no pooling directly after pooling;
* a fully connected layer only once the representation is at most `fc_max_size` (8) wide (the
  paper bins sizes into (inf, 8], (8, 4], (4, 1] and allows FC only in the small ones), at
  most `max_fc` of them, and after one only another FC layer or the softmax;
* a conv or pool kernel no larger than the current representation;
* global average pooling ("gap") and "softmax" are terminal states; gap cannot follow an FC
  layer; after `max_layers` layers only a terminal state is allowed.

The representation size is tracked from `image_size` (convs keep it, pools shrink it), so the
masks need no data; the builder uses the real input size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture, Decision, JSONDict
from nasforge.spaces.base import InvalidArchitecture, TokenSpace

if TYPE_CHECKING:
    import torch

    from nasforge.data.base import DataSpec

CONV_KERNELS: tuple[int, ...] = (1, 3, 5)
CONV_FILTERS: tuple[int, ...] = (8, 16, 32, 64, 128, 256)  # the paper's {64, 128, 256} plus CPU-sized ones
POOLS: tuple[tuple[int, int], ...] = ((5, 3), (3, 2), (2, 2))  # (kernel, stride)
FC_UNITS: tuple[int, ...] = (32, 64, 128, 256, 512)

# Token order of the "layer" decision: append, never reorder (stored tokens depend on it).
LAYER_STATES: tuple[str, ...] = (
    *(f"conv_{k}x{k}_{f}" for k in CONV_KERNELS for f in CONV_FILTERS),
    *(f"pool_{k}_s{s}" for k, s in POOLS),
    *(f"fc_{d}" for d in FC_UNITS),
    "gap",
    "softmax",
)
GAP = LAYER_STATES.index("gap")
SOFTMAX = LAYER_STATES.index("softmax")
TERMINALS = (GAP, SOFTMAX)


@dataclass(frozen=True)
class _State:
    depth: int
    last: str  # "start", "conv", "pool", "fc", "end"
    size: int
    fc: int


def _parse_state(name: str) -> tuple[str, int, int]:
    """("conv", kernel, filters) / ("pool", kernel, stride) / ("fc", units, 0) / (terminal, 0, 0)."""
    kind, _, rest = name.partition("_")
    if kind == "conv":
        kernel, filters = rest.split("_")
        return "conv", int(kernel.split("x")[0]), int(filters)
    if kind == "pool":
        kernel, stride = rest.split("_s")
        return "pool", int(kernel), int(stride)
    if kind == "fc":
        return "fc", int(rest), 0
    return name, 0, 0


_PARSED = tuple(_parse_state(s) for s in LAYER_STATES)


class MetaQNNSpace(TokenSpace):
    """Layer-state chains under MetaQNN's transition rules; `conv_filters`/`fc_units` mask the vocabulary."""

    name = "metaqnn"

    def __init__(self, max_layers: int = 8, max_fc: int = 2, image_size: int = 32,
                 conv_filters: Sequence[int] = (64, 128, 256), fc_units: Sequence[int] = (512, 256, 128),
                 fc_max_size: int = 8) -> None:
        if int(max_layers) < 1 or int(max_fc) < 0 or int(image_size) < 1:
            raise ConfigError("metaqnn: need max_layers >= 1, max_fc >= 0, image_size >= 1")
        self.max_layers = int(max_layers)
        self.max_fc = int(max_fc)
        self.image_size = int(image_size)
        self.fc_max_size = int(fc_max_size)
        self.conv_filters = [int(f) for f in conv_filters]
        self.fc_units = [int(d) for d in fc_units]
        bad = [f for f in self.conv_filters if f not in CONV_FILTERS]
        if bad or not self.conv_filters:
            raise ConfigError(f"metaqnn: conv_filters must be a non-empty subset of {list(CONV_FILTERS)}, "
                              f"got {self.conv_filters}")
        bad = [d for d in self.fc_units if d not in FC_UNITS]
        if bad:
            raise ConfigError(f"metaqnn: fc_units must be a subset of {list(FC_UNITS)}, got {self.fc_units}")
        self._cache: dict[tuple[int, ...], Decision | None] = {}

    def config(self) -> JSONDict:
        return {"max_layers": self.max_layers, "max_fc": self.max_fc, "image_size": self.image_size,
                "conv_filters": self.conv_filters, "fc_units": self.fc_units, "fc_max_size": self.fc_max_size}

    # ---- the walk ----------------------------------------------------------------------
    def _state(self, prefix: Sequence[int]) -> _State:
        state = _State(0, "start", self.image_size, 0)
        for t in prefix:
            kind, a, b = _PARSED[t]
            if kind == "conv":
                state = _State(state.depth + 1, "conv", state.size, state.fc)
            elif kind == "pool":
                state = _State(state.depth + 1, "pool", (state.size - a) // b + 1, state.fc)
            elif kind == "fc":
                state = _State(state.depth + 1, "fc", state.size, state.fc + 1)
            else:
                state = _State(state.depth, "end", state.size, state.fc)
        return state

    def _allowed(self, state: _State) -> tuple[int, ...]:
        out = []
        full = state.depth >= self.max_layers
        for i, (kind, a, b) in enumerate(_PARSED):
            if kind == "conv":
                ok = (not full and state.last != "fc" and a <= state.size and b in self.conv_filters)
            elif kind == "pool":
                ok = not full and state.last in ("start", "conv") and a <= state.size
            elif kind == "fc":
                ok = (not full and state.size <= self.fc_max_size and state.fc < self.max_fc
                      and a in self.fc_units)
            elif kind == "gap":
                ok = state.last in ("conv", "pool")
            else:  # softmax
                ok = state.last != "start"
            if ok:
                out.append(i)
        return tuple(out)

    def decision(self, prefix: Sequence[int]) -> Decision | None:
        key = tuple(prefix)
        if key not in self._cache:
            if len(self._cache) > 100_000:  # prefixes are cheap to recompute; keep memory bounded
                self._cache.clear()
            state = self._state(key)
            self._cache[key] = (None if state.last == "end"
                                else Decision("layer", LAYER_STATES, allowed=self._allowed(state), layer=state.depth))
        return self._cache[key]

    def state_key(self, prefix: Sequence[int]) -> str:
        """The paper's state: the last layer (type and parameters), depth, representation size and FC count.

        That is everything the transition rules read, so two networks that reach the same layer at the same
        depth and size share its Q-values, as in MetaQNN; the tokens before it do not matter.
        """
        state = self._state(tuple(prefix))
        last = LAYER_STATES[prefix[-1]] if prefix else "start"
        return f"{last}@{state.depth}/{state.size}/{state.fc}"

    # ---- views -------------------------------------------------------------------------
    def layer_states(self, arch: Architecture) -> tuple[list[str], str]:
        """The non-terminal layer states and the terminal one ("gap" or "softmax")."""
        tokens = self.assemble(arch.tokens).tokens
        return [LAYER_STATES[t] for t in tokens[:-1]], LAYER_STATES[tokens[-1]]

    def sizes(self, arch: Architecture) -> list[int]:
        """Representation size after each layer (from `image_size`)."""
        tokens = arch.tokens
        return [self._state(tokens[: i + 1]).size for i in range(len(tokens) - 1)]

    def describe(self, arch: Architecture) -> JSONDict:
        layers, terminal = self.layer_states(arch)
        return {"layers": layers, "terminal": terminal}

    def summary(self, arch: Architecture) -> str:
        layers, terminal = self.layer_states(arch)
        short = []
        for name in layers:
            kind, a, b = _parse_state(name)
            short.append({"conv": f"C{a}x{b}", "pool": f"P{a}/{b}", "fc": f"FC{a}"}[kind])
        return " ".join([*short, terminal.upper()])

    def from_json(self, data: JSONDict) -> Architecture:
        if data.get("space", self.name) != self.name:
            raise InvalidArchitecture(f"architecture is for space {data.get('space')!r}, not {self.name!r}")
        if "tokens" in data:
            return self.assemble(data["tokens"])
        desc = data.get("description", data)
        try:
            names = [*desc["layers"], desc.get("terminal", "softmax")]
            return self.assemble([LAYER_STATES.index(n) for n in names])
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidArchitecture(f"metaqnn: bad description: {exc}") from exc

    # ---- PyTorch ---------------------------------------------------------------------
    def build(self, arch: Architecture, data: DataSpec) -> torch.nn.Module:
        from nasforge.models.networks import MetaQNNNetwork, QLayer, image_shape

        channels, height, width = image_shape(data.input_shape, self.name)
        names, terminal = self.layer_states(arch)
        layers = [QLayer(*_parse_state(n)) for n in names]
        return MetaQNNNetwork(layers, terminal, channels, height, width, int(data.num_outputs))
