"""A small layered layout (Sugiyama-style), so drawings need no graphviz binary.

Ranks are given or are the longest path from a source; nodes within a rank are ordered by the mean
position of their neighbours, sweeping down and up a few times, which removes most crossings in graphs of
the size a cell or a network has (tens of nodes).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from nasforge.report.drawing.model import Graph

RANK_GAP = {"LR": 2.6, "TB": 1.0}  # between ranks: cells spread out for edge labels, layer stacks stay compact
ROW_GAP = {"LR": 1.25, "TB": 4.2}  # between nodes of one rank


@dataclass(frozen=True)
class Placed:
    """Node centres (x right, y up) and the extent of the graph."""

    positions: dict[str, tuple[float, float]]
    width: float
    height: float


def ranks_of(graph: Graph) -> dict[str, int]:
    fixed = {n.id: n.rank for n in graph.nodes if n.rank is not None}
    preds: dict[str, list[str]] = defaultdict(list)
    for e in graph.edges:
        preds[e.target].append(e.source)
    rank: dict[str, int] = {}

    def visit(node: str, depth: int = 0) -> int:
        if node in fixed:
            return int(fixed[node] or 0)
        if node not in rank:
            if depth > len(graph.nodes):
                raise ValueError(f"graph {graph.title!r} has a cycle")
            rank[node] = max((visit(p, depth + 1) + 1 for p in preds[node]), default=0)
        return rank[node]

    return {n.id: visit(n.id) for n in graph.nodes}


def order_ranks(graph: Graph, ranks: dict[str, int], sweeps: int = 4) -> list[list[str]]:
    """Nodes of each rank, ordered to keep edges short and uncrossed (barycentre heuristic)."""
    layers: list[list[str]] = [[] for _ in range(max(ranks.values(), default=-1) + 1)]
    for n in graph.nodes:
        layers[ranks[n.id]].append(n.id)
    neighbours: dict[str, list[str]] = defaultdict(list)
    for e in graph.edges:
        neighbours[e.source].append(e.target)
        neighbours[e.target].append(e.source)
    for sweep in range(sweeps):
        where = {node: i - (len(layer) - 1) / 2 for layer in layers for i, node in enumerate(layer)}
        # rank 0 keeps the order the space gave (c_{k-2} above c_{k-1}, x_t above h_{t-1})
        sequence = range(1, len(layers)) if sweep % 2 == 0 else range(len(layers) - 2, 0, -1)
        for r in sequence:
            before = {node: i for i, node in enumerate(layers[r])}
            layers[r] = sorted(layers[r], key=lambda node: (_centre(node, r, where, neighbours, ranks), before[node]))
            where.update({node: i - (len(layers[r]) - 1) / 2 for i, node in enumerate(layers[r])})
    return layers


def _centre(node: str, rank: int, where: dict[str, float], neighbours: dict[str, list[str]],
            ranks: dict[str, int]) -> float:
    """The mean position of a node's neighbours in other ranks (its own position when it has none)."""
    near = [where[m] for m in neighbours[node] if ranks[m] != rank]
    return sum(near) / len(near) if near else where[node]


def place(graph: Graph) -> Placed:
    ranks = ranks_of(graph)
    layers = order_ranks(graph, ranks)
    positions: dict[str, tuple[float, float]] = {}
    widest = max((len(layer) for layer in layers), default=1)
    gap, row = RANK_GAP[graph.direction], ROW_GAP[graph.direction]
    for r, layer in enumerate(layers):
        for i, node in enumerate(layer):
            along, across = r * gap, ((len(layer) - 1) / 2 - i) * row
            positions[node] = (along, across) if graph.direction == "LR" else (-across, -along)
    extent_along = max(0, len(layers) - 1) * gap
    extent_across = max(0, widest - 1) * row
    if graph.direction == "LR":
        return Placed(positions, extent_along, extent_across)
    return Placed(positions, extent_across, extent_along)
