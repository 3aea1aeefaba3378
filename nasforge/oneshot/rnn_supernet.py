"""The recurrent-cell supernet of the `rnn_cell` space (DAG cell): ENAS's shared model and DARTS' RNN search cell.

Every candidate is present: node 1 reads (x_t, h_{t-1}) through `w0`, and node i (2..num_nodes) owns one
matrix per earlier node j it may read, `edge(i, j)` (ENAS gives each (j, i) pair its own weights).
Activations have no weights, so a derived cell uses exactly one `w0` and one edge matrix per node, the same
shapes as `nasforge.models.rnn.DAGCell`, and embedding/decoder/dropout/tying follow `LanguageModel`, so a
derived cell retrained from scratch is the same model as the one searched.

Two forward passes:

* `arch` given (ENAS): each node reads its chosen source through its chosen activation, as a highway step
  (s = s_in + sigmoid(c) * (f(h) - s_in)), and h_t is the mean of the loose ends, exactly `DAGCell`'s rule.
* `arch is None` (DARTS): per node a softmax over every (source node, activation) pair of the space; node
  1 a softmax over the activations. DARTS' RNN space also has a `none` op; the `rnn_cell` space has no
  such choice (a node always reads something), so the mixture keeps to the space's four activations.
  As in DARTS' search cell, h_t is the mean of *all* nodes (which nodes end up loose is not known until
  the cell is derived), and DARTS' batch norm of the search nodes is left out.

`derive()` keeps each node's strongest (source, activation) pair, which is always a valid architecture.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from torch import nn

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture
from nasforge.models.rnn import ACTIVATIONS as ACTIVATION_FNS
from nasforge.spaces.rnn_cell import ACTIVATIONS, RNNCellSpace

State = tuple[torch.Tensor, ...]
ALPHA_INIT = 1e-3  # DARTS' initial scale of the architecture weights: every candidate starts equal


class RNNSupernet(nn.Module):
    """A word-level language model whose cell holds every candidate of the DAG `rnn_cell` space."""

    def __init__(self, space: RNNCellSpace, vocab_size: int) -> None:
        super().__init__()
        if getattr(space, "name", None) != "rnn_cell":
            raise ConfigError(f"rnn supernet: needs the rnn_cell space, got {getattr(space, 'name', space)!r}")
        if space.cell != "dag":
            raise ConfigError("rnn supernet: only cell='dag' has a supernet (the tree cell has no shared form)")
        if int(vocab_size) < 2:
            raise ConfigError(f"rnn supernet: vocabulary size must be at least 2, got {vocab_size}")
        self.space = space
        self.num_nodes = space.num_nodes
        self.hidden_size = space.hidden_size
        emb, hid = space.embedding_size, space.hidden_size
        self.embedding = nn.Embedding(int(vocab_size), emb)
        self.w0 = nn.Linear(emb + hid, 2 * hid)
        self.edges = nn.ModuleDict({_edge_key(i, j): nn.Linear(hid, 2 * hid, bias=False)
                                    for i in range(2, self.num_nodes + 1) for j in range(1, i)})
        self.drop = nn.Dropout(space.dropout)
        self.decoder = nn.Linear(hid, int(vocab_size))
        if space.tie_weights:
            self.decoder.weight = self.embedding.weight
        acts = len(ACTIVATIONS)
        self.alpha_first = nn.Parameter(ALPHA_INIT * torch.randn(acts))
        self.alpha_nodes = nn.ParameterList(
            nn.Parameter(ALPHA_INIT * torch.randn((i - 1) * acts)) for i in range(2, self.num_nodes + 1))

    # ---- parameter groups ------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """DARTS' α: node 1's activation logits, then per node i its (source, activation) logits."""
        return [self.alpha_first, *self.alpha_nodes]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Everything but α (the shared weights ENAS and DARTS train on training batches)."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    # ---- forward -----------------------------------------------------------------------
    def init_state(self, batch: int, like: torch.Tensor) -> State:
        return (like.new_zeros(batch, self.hidden_size),)

    def run(self, ids: torch.Tensor, state: State | None = None,
            arch: Architecture | None = None) -> tuple[torch.Tensor, State]:
        """`(batch, seq)` ids -> `(batch, seq, vocab)` logits and the last state (for truncated BPTT)."""
        if ids.dim() != 2:
            raise ValueError(f"language model input must be (batch, seq) token ids, got shape {tuple(ids.shape)}")
        emb = self.drop(self.embedding(ids.long()))
        if state is None:
            state = self.init_state(ids.shape[0], emb)
        h = state[0]
        outs = []
        if arch is None:
            weights = self._mixture_weights()
            for t in range(ids.shape[1]):
                h = self._mixed_step(emb[:, t], h, weights)
                outs.append(h)
        else:
            first, nodes, loose = self._path(arch)
            for t in range(ids.shape[1]):
                h = self._path_step(emb[:, t], h, first, nodes, loose)
                outs.append(h)
        return self.decoder(self.drop(torch.stack(outs, dim=1))), (h,)

    def forward(self, ids: torch.Tensor, state: State | None = None,
                arch: Architecture | None = None) -> torch.Tensor:
        return self.run(ids, state, arch)[0]

    def path(self, arch: Architecture) -> SinglePath:
        """A module view that always runs `arch` (for `lm_forward`/`lm_loss`, which call `run(ids, state)`)."""
        self._path(arch)  # validate now, not at the first batch
        return SinglePath(self, arch)

    def edge(self, node: int, source: int) -> nn.Linear:
        """The matrix node `node` applies when it reads node `source` (both 1-based, source < node)."""
        return cast(nn.Linear, self.edges[_edge_key(node, source)])

    # ---- single path (ENAS) ----------------------------------------------------------
    def _path(self, arch: Architecture) -> tuple[str, list[tuple[int, str]], list[int]]:
        if arch.space != self.space.name:
            raise ValueError(f"rnn supernet: architecture of space {arch.space!r}, expected {self.space.name!r}")
        first, nodes = self.space.dag(arch)
        return first, nodes, self.space.loose_ends(arch)

    @staticmethod
    def _highway(s_in: torch.Tensor, pre: torch.Tensor, act: str) -> torch.Tensor:
        c, h = pre.chunk(2, dim=-1)
        return s_in + torch.sigmoid(c) * (ACTIVATION_FNS[act](h) - s_in)

    def _path_step(self, x: torch.Tensor, h_prev: torch.Tensor, first: str, nodes: list[tuple[int, str]],
                   loose: list[int]) -> torch.Tensor:
        values = [self._highway(h_prev, self.w0(torch.cat([x, h_prev], dim=-1)), first)]
        for i, (src, act) in enumerate(nodes):  # node i + 2 reads node src (1-based)
            s_in = values[src - 1]
            values.append(self._highway(s_in, self.edge(i + 2, src)(s_in), act))
        return torch.stack([values[n - 1] for n in loose]).mean(0)

    # ---- mixture (DARTS) ---------------------------------------------------------------
    def _mixture_weights(self) -> list[torch.Tensor]:
        """Softmax(α) per node: node 1 over activations, node i as a (i - 1, activations) table."""
        acts = len(ACTIVATIONS)
        out = [torch.softmax(self.alpha_first, dim=0)]
        for alpha in self.alpha_nodes:
            out.append(torch.softmax(alpha, dim=0).view(-1, acts))
        return out

    @staticmethod
    def _mixed_activation(h: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        return sum((probs[k] * ACTIVATION_FNS[name](h) for k, name in enumerate(ACTIVATIONS)),
                   torch.zeros_like(h))

    def _mixed_step(self, x: torch.Tensor, h_prev: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
        c, h = self.w0(torch.cat([x, h_prev], dim=-1)).chunk(2, dim=-1)
        values = [h_prev + torch.sigmoid(c) * (self._mixed_activation(h, weights[0]) - h_prev)]
        for i, table in enumerate(weights[1:]):
            node = torch.zeros_like(h_prev)
            for j, s_in in enumerate(values):  # sum over sources j of sum over activations k of p[j, k] * highway
                c, h = self.edge(i + 2, j + 1)(s_in).chunk(2, dim=-1)
                share = table[j].sum()
                node = node + share * s_in + torch.sigmoid(c) * (self._mixed_activation(h, table[j]) - share * s_in)
            values.append(node)
        return torch.stack(values).mean(0)

    # ---- derivation ----------------------------------------------------------------------
    def derive(self) -> Architecture:
        """Each node's strongest incoming (source, activation) pair; node 1 its strongest activation."""
        acts = len(ACTIVATIONS)
        tokens = [int(torch.argmax(self.alpha_first))]
        for alpha in self.alpha_nodes:
            best = int(torch.argmax(alpha))
            tokens += [best // acts, best % acts]  # the input token j means node j + 1
        return self.space.assemble(tokens)

    def alpha_entropy(self) -> float:
        """Mean entropy (nats) of the per-node softmax(α): log(choices) at the start, 0 once decided."""
        with torch.no_grad():
            values = []
            for alpha in self.arch_parameters():
                logp = torch.log_softmax(alpha, dim=0)
                values.append(float(-(logp.exp() * logp).sum()))
        return sum(values) / len(values)

    def max_alpha_entropy(self) -> float:
        """The mean entropy of uniform α (what `alpha_entropy` starts near)."""
        sizes = [p.numel() for p in self.arch_parameters()]
        return sum(math.log(n) for n in sizes) / len(sizes)


class SinglePath(nn.Module):
    """One architecture of a supernet, sharing its weights: `run(ids, state)` as a `LanguageModel` has."""

    def __init__(self, supernet: RNNSupernet, arch: Architecture) -> None:
        super().__init__()
        self.supernet = supernet
        self.arch = arch

    def run(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        return self.supernet.run(ids, state, self.arch)

    def forward(self, ids: torch.Tensor, state: State | None = None) -> torch.Tensor:
        return self.supernet.run(ids, state, self.arch)[0]


def _edge_key(node: int, source: int) -> str:
    return f"{source}->{node}"


def build_rnn_supernet(space: Any, vocab_size: int) -> RNNSupernet:
    """The supernet for an `rnn_cell` space and a vocabulary (a ConfigError for the tree cell)."""
    return RNNSupernet(space, vocab_size)
