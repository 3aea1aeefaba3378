"""Recurrent cells: the ENAS/DARTS DAG cell, and NAS-RL's tree cell (`cell="tree"`).

DAG cell tokens: node 1's activation, then for each node i = 2..num_nodes the earlier node it
reads and its activation. Nodes no other node reads are the loose ends, averaged into h_t.

Tree cell tokens (NAS-RL): a (combine, activation) pair for each of the `2 * base - 1` tree
nodes (leaves first, root last), then the cell inject's (combine, activation), the node whose
output receives c_{t-1}, and the node whose pre-activation value becomes c_t.

`build` returns a word-level language model: `(batch, seq)` token ids -> `(batch, seq, vocab)`
logits, for a data spec with `input_shape == (seq_len,)` and `num_outputs == vocab size`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture, Decision, JSONDict
from nasforge.spaces.base import TokenSpace

if TYPE_CHECKING:
    import torch

    from nasforge.data.base import DataSpec

ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "sigmoid", "identity")
COMBINATIONS: tuple[str, ...] = ("add", "elem_mult")


class RNNCellSpace(TokenSpace):
    """A recurrent cell searched token by token, built into a language model of the given sizes."""

    name = "rnn_cell"

    def __init__(self, cell: str = "dag", num_nodes: int = 8, base: int = 2, embedding_size: int = 64,
                 hidden_size: int = 64, tie_weights: bool = True, dropout: float = 0.0) -> None:
        if cell not in ("dag", "tree"):
            raise ConfigError(f"rnn_cell: cell must be 'dag' or 'tree', got {cell!r}")
        if cell == "dag" and int(num_nodes) < 1:
            raise ConfigError(f"rnn_cell: num_nodes must be >= 1, got {num_nodes}")
        if cell == "tree" and int(base) not in (2, 4, 8):
            raise ConfigError(f"rnn_cell: base must be 2, 4 or 8, got {base}")
        if tie_weights and int(embedding_size) != int(hidden_size):
            raise ConfigError("rnn_cell: tie_weights needs embedding_size == hidden_size")
        self.cell = cell
        self.num_nodes = int(num_nodes)
        self.base = int(base)
        self.embedding_size = int(embedding_size)
        self.hidden_size = int(hidden_size)
        self.tie_weights = bool(tie_weights)
        self.dropout = float(dropout)
        layout: list[Decision] = []
        if cell == "dag":
            nodes = tuple(range(1, self.num_nodes))
            layout.append(Decision("activation", ACTIVATIONS, layer=1))
            for i in range(2, self.num_nodes + 1):
                layout += [Decision("input", nodes, allowed=tuple(range(i - 1)), layer=i),
                           Decision("activation", ACTIVATIONS, layer=i)]
        else:
            n = 2 * self.base - 1
            for k in range(n):
                layout += [Decision("combine", COMBINATIONS, layer=k), Decision("activation", ACTIVATIONS, layer=k)]
            non_root = tuple(range(n - 1))
            layout += [Decision("combine", COMBINATIONS, layer=n), Decision("activation", ACTIVATIONS, layer=n),
                       Decision("inject_node", non_root), Decision("memory_node", non_root)]
        self._layout = tuple(layout)

    def decision(self, prefix: Sequence[int]) -> Decision | None:
        n = len(prefix)
        return self._layout[n] if n < len(self._layout) else None

    def config(self) -> JSONDict:
        return {"cell": self.cell, "num_nodes": self.num_nodes, "base": self.base,
                "embedding_size": self.embedding_size, "hidden_size": self.hidden_size,
                "tie_weights": self.tie_weights, "dropout": self.dropout}

    # ---- views -------------------------------------------------------------------------
    def dag(self, arch: Architecture) -> tuple[str, list[tuple[int, str]]]:
        """Node 1's activation and (source node, activation) for nodes 2..num_nodes."""
        t = self.assemble(arch.tokens).tokens
        nodes = [(t[2 * i - 1] + 1, ACTIVATIONS[t[2 * i]]) for i in range(1, self.num_nodes)]
        return ACTIVATIONS[t[0]], nodes

    def loose_ends(self, arch: Architecture) -> list[int]:
        """Nodes (1-based) that no later node reads: their mean is h_t."""
        _, nodes = self.dag(arch)
        read = {src for src, _ in nodes}
        return [n for n in range(1, self.num_nodes + 1) if n not in read]

    def tree(self, arch: Architecture) -> JSONDict:
        t = self.assemble(arch.tokens).tokens
        n = 2 * self.base - 1
        return {"nodes": [{"combine": COMBINATIONS[t[2 * k]], "activation": ACTIVATIONS[t[2 * k + 1]]}
                          for k in range(n)],
                "inject": {"combine": COMBINATIONS[t[2 * n]], "activation": ACTIVATIONS[t[2 * n + 1]],
                           "node": t[2 * n + 2]},
                "memory_node": t[2 * n + 3]}

    def describe(self, arch: Architecture) -> JSONDict:
        if self.cell == "tree":
            return {"cell": "tree", "base": self.base, **self.tree(arch)}
        first, nodes = self.dag(arch)
        return {"cell": "dag", "nodes": [{"input": "x,h", "activation": first}]
                + [{"input": src, "activation": act} for src, act in nodes],
                "loose_ends": self.loose_ends(arch)}

    def summary(self, arch: Architecture) -> str:
        if self.cell == "tree":
            tree = self.tree(arch)
            text = " ".join(f"{'+' if n['combine'] == 'add' else '*'}{n['activation']}" for n in tree["nodes"])
            inject = tree["inject"]
            return (f"tree{self.base}: {text}; inject {inject['combine']}/{inject['activation']}"
                    f"@{inject['node']} c<-{tree['memory_node']}")
        first, nodes = self.dag(arch)
        parts = [f"1:{first}"] + [f"{i + 2}<{src}:{act}" for i, (src, act) in enumerate(nodes)]
        return " ".join(parts) + f" -> mean{self.loose_ends(arch)}"

    # ---- PyTorch ---------------------------------------------------------------------
    def build(self, arch: Architecture, data: DataSpec) -> torch.nn.Module:
        from nasforge.models.rnn import DAGCell, LanguageModel, RecurrentCell, TreeCell, TreeNode

        if len(tuple(data.input_shape)) != 1:
            raise ValueError(f"rnn_cell: builds a language model over (seq_len,) token ids, "
                             f"got input_shape {tuple(data.input_shape)}")
        cell: RecurrentCell
        if self.cell == "dag":
            first, nodes = self.dag(arch)
            cell = DAGCell(self.embedding_size, self.hidden_size, first, nodes)
        else:
            tree = self.tree(arch)
            inject = tree["inject"]
            cell = TreeCell(self.embedding_size, self.hidden_size, self.base,
                            [TreeNode(n["combine"], n["activation"]) for n in tree["nodes"]],
                            TreeNode(inject["combine"], inject["activation"]), inject["node"],
                            tree["memory_node"])
        return LanguageModel(cell, int(data.num_outputs), self.embedding_size, self.tie_weights, self.dropout)
