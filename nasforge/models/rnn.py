"""Recurrent cells the seed papers searched, and the word-level language model they are trained in.

`DAGCell` is the ENAS/DARTS cell: node 1 reads (x_t, h_{t-1}), every later node reads one earlier
node, each through an activation, and h_t is the mean of the loose ends. Each node is a highway
step (s = s_in + sigmoid(c) * (f(h) - s_in)), as both papers' code does, which keeps deep
cells trainable. `TreeCell` is NAS-RL's: a binary tree of (combine, activation) nodes over
(x_t, h_{t-1}) with a memory c_t injected at one node and read out of another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}
COMBINATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "add": torch.add,
    "elem_mult": torch.mul,
}

State = tuple[torch.Tensor, ...]


class RecurrentCell(nn.Module):
    """One time step: `(x_t, state) -> (h_t, state)`; `state[0]` is h."""

    hidden_size: int

    def init_state(self, batch: int, like: torch.Tensor) -> State:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:  # pragma: no cover
        raise NotImplementedError


class DAGCell(RecurrentCell):
    """`first` is node 1's activation; `nodes[i] = (source, activation)` for node i + 2 (sources 1-based)."""

    def __init__(self, input_size: int, hidden_size: int, first: str, nodes: Sequence[tuple[int, str]]) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.first = first
        self.nodes = tuple(nodes)
        for i, (src, act) in enumerate(self.nodes):
            if not 1 <= src <= i + 1:
                raise ValueError(f"rnn node {i + 2} reads node {src}; only nodes 1..{i + 1} exist")
            if act not in ACTIVATIONS:
                raise ValueError(f"unknown activation {act!r}")
        self.w0 = nn.Linear(input_size + hidden_size, 2 * hidden_size)
        self.ws = nn.ModuleList(nn.Linear(hidden_size, 2 * hidden_size, bias=False) for _ in self.nodes)
        read = {src for src, _ in self.nodes}
        self.loose_ends = tuple(n for n in range(1, len(self.nodes) + 2) if n not in read)

    def init_state(self, batch: int, like: torch.Tensor) -> State:
        return (like.new_zeros(batch, self.hidden_size),)

    def _highway(self, s_in: torch.Tensor, pre: torch.Tensor, act: str) -> torch.Tensor:
        c, h = pre.chunk(2, dim=-1)
        return s_in + torch.sigmoid(c) * (ACTIVATIONS[act](h) - s_in)

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        h_prev = state[0]
        values = [self._highway(h_prev, self.w0(torch.cat([x, h_prev], dim=-1)), self.first)]
        for (src, act), w in zip(self.nodes, self.ws):
            s_in = values[src - 1]
            values.append(self._highway(s_in, w(s_in), act))
        h = torch.stack([values[n - 1] for n in self.loose_ends]).mean(0)
        return h, (h,)


@dataclass(frozen=True)
class TreeNode:
    combine: str
    activation: str


class TreeCell(RecurrentCell):
    """NAS-RL's tree cell over `2 * base - 1` nodes: leaves first, then each level up to the root.

    Leaf i combines W_i x_t and U_i h_{t-1}; an inner node combines its two children. Node
    `inject` has its output replaced by act(combine(output, c_{t-1})); the pre-activation value
    of node `memory` becomes c_t. The root's output is h_t.
    """

    def __init__(self, input_size: int, hidden_size: int, base: int, nodes: Sequence[TreeNode],
                 inject: TreeNode, inject_node: int, memory_node: int) -> None:
        super().__init__()
        if base not in (2, 4, 8):
            raise ValueError(f"tree cell base must be 2, 4 or 8, got {base}")
        if len(nodes) != 2 * base - 1:
            raise ValueError(f"a base-{base} tree has {2 * base - 1} nodes, got {len(nodes)}")
        for n in (*nodes, inject):
            if n.combine not in COMBINATIONS or n.activation not in ACTIVATIONS:
                raise ValueError(f"bad tree node {n}")
        if not (0 <= inject_node < 2 * base - 2 and 0 <= memory_node < 2 * base - 2):
            raise ValueError("inject_node and memory_node must name non-root tree nodes")
        self.hidden_size = hidden_size
        self.base = base
        self.tree = tuple(nodes)
        self.inject = inject
        self.inject_node = inject_node
        self.memory_node = memory_node
        self.wx = nn.Linear(input_size, base * hidden_size)
        self.wh = nn.Linear(hidden_size, base * hidden_size, bias=False)
        # children of inner node k: built level by level, two consecutive nodes of the level below
        self.children_of: dict[int, tuple[int, int]] = {}
        level, nxt = list(range(base)), base
        while len(level) > 1:
            up = []
            for a, b in zip(level[::2], level[1::2]):
                self.children_of[nxt] = (a, b)
                up.append(nxt)
                nxt += 1
            level = up

    def init_state(self, batch: int, like: torch.Tensor) -> State:
        zeros = like.new_zeros(batch, self.hidden_size)
        return (zeros, zeros)

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        h_prev, c_prev = state
        xs = self.wx(x).chunk(self.base, dim=-1)
        hs = self.wh(h_prev).chunk(self.base, dim=-1)
        outputs: list[torch.Tensor] = []
        memory = c_prev
        for k, node in enumerate(self.tree):
            a, b = (xs[k], hs[k]) if k < self.base else (outputs[self.children_of[k][0]],
                                                         outputs[self.children_of[k][1]])
            pre = COMBINATIONS[node.combine](a, b)
            if k == self.memory_node:
                memory = pre
            out = ACTIVATIONS[node.activation](pre)
            if k == self.inject_node:
                out = ACTIVATIONS[self.inject.activation](COMBINATIONS[self.inject.combine](out, c_prev))
            outputs.append(out)
        h = outputs[-1]
        return h, (h, memory)


class LSTMCell(RecurrentCell):
    """The hand-designed baseline the seed papers compare their cells against, behind the same interface."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.lstm = nn.LSTMCell(input_size, hidden_size)

    def init_state(self, batch: int, like: torch.Tensor) -> State:
        zeros = like.new_zeros(batch, self.hidden_size)
        return (zeros, zeros)

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        h, c = self.lstm(x, (state[0], state[1]))
        return h, (h, c)


class LanguageModel(nn.Module):
    """Embedding, the cell unrolled over time, a decoder (optionally tied to the embedding).

    `forward(ids)` maps `(batch, seq)` token ids to `(batch, seq, vocab)` logits; `run` also takes
    and returns the recurrent state, for truncated back-propagation across batches.
    """

    def __init__(self, cell: RecurrentCell, vocab_size: int, embedding_size: int, tie_weights: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if tie_weights and embedding_size != cell.hidden_size:
            raise ValueError("tied weights need embedding_size == hidden_size")
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.cell = cell
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(cell.hidden_size, vocab_size)
        if tie_weights:
            self.decoder.weight = self.embedding.weight

    def run(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if ids.dim() != 2:
            raise ValueError(f"language model input must be (batch, seq) token ids, got shape {tuple(ids.shape)}")
        emb = self.drop(self.embedding(ids.long()))
        if state is None:
            state = self.cell.init_state(ids.shape[0], emb)
        outs = []
        for t in range(ids.shape[1]):
            h, state = self.cell(emb[:, t], state)
            outs.append(h)
        return self.decoder(self.drop(torch.stack(outs, dim=1))), state

    def forward(self, ids: torch.Tensor, state: State | None = None) -> torch.Tensor:
        return self.run(ids, state)[0]
