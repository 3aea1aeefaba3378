"""What a drawing holds: graphs of labelled nodes and edges, before any layout or pixels.

Tests and tools read this model (node and edge counts match the architecture); `layout.py` places it and
`render.py` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Node kinds, each drawn in its own colour.
KINDS = ("input", "output", "node", "layer", "head")


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    kind: str = "node"
    detail: str = ""  # a second, smaller line: a layer's size, a node's activation
    rank: int | None = None  # fixed column (row, top to bottom) in the layout; None: from the edges


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str = ""
    dashed: bool = False  # a concatenation or averaging into the output, a skip connection


@dataclass
class Graph:
    """One panel: a cell (left to right) or a layer diagram (top to bottom)."""

    title: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    direction: str = "LR"  # "LR": ranks are columns; "TB": ranks are rows

    def node(self, id: str, label: str, kind: str = "node", detail: str = "", rank: int | None = None) -> str:
        if any(n.id == id for n in self.nodes):
            raise ValueError(f"node {id!r} twice in graph {self.title!r}")
        self.nodes.append(Node(id, label, kind, detail, rank))
        return id

    def edge(self, source: str, target: str, label: str = "", dashed: bool = False) -> None:
        ids = {n.id for n in self.nodes}
        if source not in ids or target not in ids:
            raise ValueError(f"edge {source}->{target}: unknown node in graph {self.title!r}")
        self.edges.append(Edge(source, target, label, dashed))


@dataclass
class Drawing:
    """An architecture as one or more graphs drawn side by side, with a title and a caption."""

    title: str
    graphs: list[Graph]
    caption: str = ""
