"""NAS-Bench-201's cell space: 6 edges of a 4-node DAG, 5 operations each (15,625 cells).

The canonical key is what makes the benchmark honest: many of the 15,625 strings compute the
same function (dead edges, identity edges, swapped intermediate nodes), and a search that
counts them as different wastes its budget re-evaluating one network.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from nasforge.core.types import Architecture, Decision, JSONDict
from nasforge.spaces.base import InvalidArchitecture, TokenSpace
from nasforge.spaces.nb201_cell import EDGES as EDGES  # the cell's shape, importable from here as before
from nasforge.spaces.nb201_cell import NODES as NODES
from nasforge.spaces.nb201_cell import OPS as OPS

if TYPE_CHECKING:
    import torch

    from nasforge.data.base import DataSpec

_SHORT = {"nor_conv_1x1": "c1", "nor_conv_3x3": "c3", "avg_pool_3x3": "ap"}
_NONE, _SKIP = 0, 1
DEAD_KEY = "nb201:zero"
# tokens -> canonical key, shared by every instance: at most 15,625 entries, and a benchmark
# builds many spaces in one process
_KEYS: dict[tuple[int, ...], str] = {}
_NEIGHBOURS: dict[tuple[int, ...], list[Architecture]] = {}


class NB201Space(TokenSpace):
    """The NAS-Bench-201 topology space; `build` gives its macro skeleton with `cells_per_stage` cells."""

    name = "nb201"

    def __init__(self, cells_per_stage: int = 5, channels: int = 16) -> None:
        if cells_per_stage < 1 or channels < 1:
            raise ValueError("nb201: cells_per_stage and channels must be positive")
        self.cells_per_stage = int(cells_per_stage)
        self.channels = int(channels)
        self._decisions = tuple(Decision(f"edge_{i}_{j}", OPS) for i, j in EDGES)

    # ---- decisions ---------------------------------------------------------------------
    def decision(self, prefix: Sequence[int]) -> Decision | None:
        n = len(prefix)
        return self._decisions[n] if n < len(EDGES) else None

    def assemble(self, tokens: Sequence[int]) -> Architecture:
        # Every token sequence of length 6 over 5 ops is valid, so skip the generic walk.
        toks = tuple(int(t) for t in tokens)
        if len(toks) != len(EDGES) or any(not 0 <= t < len(OPS) for t in toks):
            raise InvalidArchitecture(f"nb201: need {len(EDGES)} tokens in 0..{len(OPS) - 1}, got {list(toks)}")
        return Architecture(self.name, toks)

    # The generic walk, mutate and neighbours re-derive decisions token by token; here every
    # 6-token sequence is valid, so direct versions make strategies' inner loops much cheaper.
    def walk(self, tokens: Sequence[int]) -> Iterator[tuple[Decision, int]]:
        return zip(self._decisions, self.assemble(tokens).tokens)

    def sample(self, rng: np.random.Generator) -> Architecture:
        return Architecture(self.name, tuple(int(t) for t in rng.integers(len(OPS), size=len(EDGES))))

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """Change one edge to another op; retried (up to 20 times) until the key changes."""
        own = self.key(arch)
        child = arch
        for _ in range(20):
            tokens = list(arch.tokens)
            edge = int(rng.integers(len(EDGES)))
            tokens[edge] = (tokens[edge] + 1 + int(rng.integers(len(OPS) - 1))) % len(OPS)
            child = Architecture(self.name, tuple(tokens))
            if self.key(child) != own:
                return child
        return child

    def neighbours(self, arch: Architecture) -> list[Architecture]:
        """Every cell one edge away, one per distinct key (the parent's excluded), in edge order."""
        tokens = self.assemble(arch.tokens).tokens
        cached = _NEIGHBOURS.get(tokens)
        if cached is None:
            seen = {self.key(arch)}
            cached = []
            for i, token in enumerate(tokens):
                for op in range(len(OPS)):
                    if op != token:
                        child = Architecture(self.name, (*tokens[:i], op, *tokens[i + 1:]))
                        k = self.key(child)
                        if k not in seen:
                            seen.add(k)
                            cached.append(child)
            _NEIGHBOURS[tokens] = cached
        return list(cached)

    # ---- strings -----------------------------------------------------------------------
    def to_string(self, arch: Architecture) -> str:
        ops = [OPS[t] for t in self.assemble(arch.tokens).tokens]
        parts, k = [], 0
        for node in range(1, NODES):
            parts.append("|" + "|".join(f"{ops[k + j]}~{j}" for j in range(node)) + "|")
            k += node
        return "+".join(parts)

    def from_string(self, text: str) -> Architecture:
        nodes = text.strip().split("+")
        if len(nodes) != NODES - 1:
            raise InvalidArchitecture(f"nb201: {text!r} is not a cell string like |op~0|+|op~0|op~1|+|...|")
        tokens: list[int] = []
        for node, part in enumerate(nodes, start=1):
            items = [p for p in part.strip().split("|") if p]
            if len(items) != node:
                raise InvalidArchitecture(f"nb201: node {node} of {text!r} needs {node} inputs")
            for j, item in enumerate(items):
                op, _, src = item.partition("~")
                if op not in OPS or src != str(j):
                    raise InvalidArchitecture(f"nb201: bad edge {item!r} in {text!r}")
                tokens.append(OPS.index(op))
        return Architecture(self.name, tuple(tokens))

    def describe(self, arch: Architecture) -> JSONDict:
        return {"arch_str": self.to_string(arch)}

    def summary(self, arch: Architecture) -> str:
        return self.to_string(arch)

    def from_json(self, data: JSONDict) -> Architecture:
        if data.get("space", self.name) != self.name:
            raise InvalidArchitecture(f"architecture is for space {data.get('space')!r}, not {self.name!r}")
        if "tokens" in data:
            return self.assemble(data["tokens"])
        if "arch_str" in data:
            return self.from_string(str(data["arch_str"]))
        desc = data.get("description")
        if isinstance(desc, dict) and "arch_str" in desc:
            return self.from_string(str(desc["arch_str"]))
        raise InvalidArchitecture("nb201: architecture JSON needs 'tokens' or 'arch_str'")

    def config(self) -> JSONDict:
        return {"cells_per_stage": self.cells_per_stage, "channels": self.channels}

    # ---- canonical key -----------------------------------------------------------------
    def key(self, arch: Architecture) -> str:
        tokens = arch.tokens if type(arch.tokens) is tuple else tuple(arch.tokens)
        cached = _KEYS.get(tokens)
        if cached is None:
            tokens = self.assemble(tokens).tokens
            cached = _KEYS[tokens] = canonical_key(tokens)
        return cached

    def encode(self, arch: Architecture) -> list[float]:
        """Path encoding (which op sequences connect input to output), for predictors."""
        return path_encoding(arch.tokens)

    def build(self, arch: Architecture, data: DataSpec) -> torch.nn.Module:
        from nasforge.models.nb201_net import build

        return build(arch, data, cells_per_stage=self.cells_per_stage, channels=self.channels)


def canonical_key(tokens: Sequence[int]) -> str:
    """A string equal for two cells exactly when they compute the same labelled graph of operations.

    Skip edges are identities and node values are sums, so each node is a multiset of
    "producers": the cell input `x` or a parameterised edge (conv/pool). The cell becomes a small
    DAG of parameterised edges, each reading a multiset of producers; edges that cannot reach the
    output (or read nothing) are dropped. Its canonical form is the lexicographically least
    encoding over the orderings of its vertices that respect an isomorphism invariant (the
    vertex's expression tree), which keeps shared weights (one conv used twice) apart from
    duplicated ones (two convs computing the same expression).
    """
    ops = list(tokens)
    # node value: tuple of producer refs; ref -1 = input x, ref k>=0 = vertex k
    node_vals: list[list[int]] = [[-1]]
    v_op: list[str] = []
    v_in: list[list[int]] = []
    k = 0
    for node in range(1, NODES):
        val: list[int] = []
        for j in range(node):
            op = ops[k]
            k += 1
            src = node_vals[j]
            if op == _NONE or not src:
                continue
            if op == _SKIP:
                val.extend(src)
            else:
                v_op.append(_SHORT[OPS[op]])
                v_in.append(list(src))
                val.append(len(v_op) - 1)
        node_vals.append(val)
    out = node_vals[NODES - 1]
    if not out:
        return DEAD_KEY
    # keep only vertices the output depends on
    live: set[int] = set()
    stack = [r for r in out if r >= 0]
    while stack:
        v = stack.pop()
        if v not in live:
            live.add(v)
            stack.extend(r for r in v_in[v] if r >= 0)
    verts = sorted(live)
    expr: dict[int, str] = {}

    def tree(ref: int) -> str:
        if ref < 0:
            return "x"
        if ref not in expr:
            expr[ref] = f"{v_op[ref]}(" + "+".join(sorted(tree(r) for r in v_in[ref])) + ")"
        return expr[ref]

    for v in verts:
        tree(v)
    verts.sort(key=lambda v: (len(expr[v]), expr[v]))
    groups = [list(g) for _, g in itertools.groupby(verts, key=lambda v: expr[v])]
    best: str | None = None
    for perm in itertools.product(*(itertools.permutations(g) for g in groups)):
        order = [v for g in perm for v in g]
        index = {v: i for i, v in enumerate(order)}
        text = ";".join(f"v{i}={v_op[v]}({_refs(v_in[v], index)})" for i, v in enumerate(order))
        text = (text + ";" if text else "") + "out=" + _refs(out, index)
        if best is None or text < best:
            best = text
    assert best is not None
    return "nb201:" + best


def _refs(refs: list[int], index: dict[int, int]) -> str:
    ordered = sorted(-1 if r < 0 else index[r] for r in refs)
    return "+".join("x" if i < 0 else f"v{i}" for i in ordered)


# paths from input to output as edge sequences: 0->3, 0->1->3, 0->2->3, 0->1->2->3
_PATHS: tuple[tuple[int, ...], ...] = ((3,), (0, 4), (1, 5), (0, 2, 5))
_PARAM_OPS = (1, 2, 3, 4)  # skip, conv1x1, conv3x3, pool: "none" breaks a path


def path_encoding(tokens: Sequence[int]) -> list[float]:
    """One indicator per (path, op sequence) with no `none` on it: 4 + 16 + 16 + 64 = 100 features."""
    feats: list[float] = []
    for path in _PATHS:
        block = [0.0] * (len(_PARAM_OPS) ** len(path))
        if all(tokens[e] != _NONE for e in path):
            idx = 0
            for e in path:
                idx = idx * len(_PARAM_OPS) + (tokens[e] - 1)
            block[idx] = 1.0
        feats.extend(block)
    return feats
