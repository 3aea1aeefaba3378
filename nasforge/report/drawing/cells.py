"""Cell spaces as DAGs whose edges carry their ops: nb201, darts and nasnet (normal and reduction cells side
by side), enas_macro, and rnn_cell (the ENAS/DARTS DAG cell and NAS-RL's tree cell)."""

from __future__ import annotations

from typing import Any

from nasforge.core.types import Architecture
from nasforge.report.drawing.model import Drawing, Graph


def nb201(space: Any, arch: Architecture) -> Drawing:
    """Nodes 0..3; an edge per op that is not `none` (a `none` edge carries nothing, so it is not drawn)."""
    from nasforge.spaces.nb201 import EDGES, NODES, OPS

    g = Graph("cell")
    for node in range(NODES):
        g.node(str(node), str(node), "input" if node == 0 else "output" if node == NODES - 1 else "node", rank=node)
    for (target, source), token in zip(EDGES, space.assemble(arch.tokens).tokens):
        if OPS[token] != "none":
            g.edge(str(source), str(target), OPS[token])
    return Drawing(f"nb201 cell: {space.to_string(arch)}", [g], "every edge of the cell; 'none' edges left out")


def cell_pair(space: Any, arch: Architecture) -> Drawing:
    """darts and nasnet: each block is a node fed by two op-labelled edges; the output concatenates the
    cell's output states (dashed)."""
    from nasforge.spaces.nasnet import CELLS

    graphs = []
    for cell in CELLS:
        g = Graph("normal cell" if cell == "normal" else "reduction cell")
        g.node("s0", "$c_{k-2}$", "input", rank=0)
        g.node("s1", "$c_{k-1}$", "input", rank=0)
        for b, (a, op_a, b_in, op_b, combine) in enumerate(space.blocks(arch, cell)):
            detail = "" if not space.search_combine else combine
            g.node(f"s{b + 2}", str(b), "node", detail)
            g.edge(f"s{a}", f"s{b + 2}", op_a)
            g.edge(f"s{b_in}", f"s{b + 2}", op_b)
        g.node("out", "$c_{k}$", "output")
        for state in space.concat(arch, cell):
            g.edge(f"s{state}", "out", dashed=True)
        graphs.append(g)
    combine = "; block labels say how its two inputs combine" if space.search_combine else ""
    return Drawing(f"{space.name} cells", graphs, f"edges: ops; dashed: concatenated into the cell output{combine}")


def enas_macro(space: Any, arch: Architecture) -> Drawing:
    """Layer k applies its op to layer k-1 (the labelled edge) and adds the layers its skips name (dashed)."""
    g = Graph("network", direction="TB")
    g.node("in", "image", "input")
    layers = space.layers(arch)
    for k, layer in enumerate(layers):
        g.node(f"l{k}", f"L{k}", "node")
        g.edge("in" if k == 0 else f"l{k - 1}", f"l{k}", layer["op"])
        for j in layer["skips"]:
            g.edge(f"l{j}", f"l{k}", dashed=True)
    g.node("out", "pool + fc", "output")
    g.edge(f"l{len(layers) - 1}", "out")
    return Drawing(f"enas_macro: {len(layers)} layers", [g], "edges: the layer's op; dashed: skip connections added in")


def rnn_cell(space: Any, arch: Architecture) -> Drawing:
    return _tree(space, arch) if space.cell == "tree" else _dag(space, arch)


def _dag(space: Any, arch: Architecture) -> Drawing:
    """Node 1 reads x_t and h_{t-1}; node i reads one earlier node; edges carry the activation; h_t is the
    mean of the loose ends (dashed)."""
    first, nodes = space.dag(arch)
    g = Graph("recurrent cell")
    g.node("x", "$x_t$", "input", rank=0)
    g.node("h", "$h_{t-1}$", "input", rank=0)
    g.node("n1", "1", "node")
    g.edge("x", "n1", first)
    g.edge("h", "n1", first)
    for i, (source, activation) in enumerate(nodes, start=2):
        g.node(f"n{i}", str(i), "node")
        g.edge(f"n{source}", f"n{i}", activation)
    g.node("out", "$h_t$ (mean)", "output")
    for n in space.loose_ends(arch):
        g.edge(f"n{n}", "out", dashed=True)
    return Drawing(f"rnn_cell (DAG, {space.num_nodes} nodes)", [g],
                   "edges: the activation applied to the source node's value; dashed: averaged into h_t")


def _tree(space: Any, arch: Architecture) -> Drawing:
    """NAS-RL's tree: leaves combine x_t and h_{t-1}, inner nodes their two children; c_{t-1} is injected
    into one node and another's pre-activation value becomes c_t."""
    tree = space.tree(arch)
    base = space.base
    g = Graph(f"tree cell (base {base})")
    g.node("x", "$x_t$", "input", rank=0)
    g.node("h", "$h_{t-1}$", "input", rank=0)
    g.node("c", "$c_{t-1}$", "input", rank=0)
    children: dict[int, tuple[int, int]] = {}
    level, nxt = list(range(base)), base
    while len(level) > 1:
        up = []
        for a, b in zip(level[::2], level[1::2]):
            children[nxt] = (a, b)
            up.append(nxt)
            nxt += 1
        level = up
    for k, node in enumerate(tree["nodes"]):
        sign = "+" if node["combine"] == "add" else "×"
        g.node(f"t{k}", f"{k}: {sign}", "node", node["activation"])
        if k < base:
            g.edge("x", f"t{k}")
            g.edge("h", f"t{k}")
        else:
            for child in children[k]:
                g.edge(f"t{child}", f"t{k}")
    inject = tree["inject"]
    g.edge("c", f"t{inject['node']}", f"inject {'+' if inject['combine'] == 'add' else '×'} {inject['activation']}",
           dashed=True)
    g.node("ct", "$c_t$", "output")
    g.edge(f"t{tree['memory_node']}", "ct", "pre-activation", dashed=True)
    g.node("ht", "$h_t$", "output")
    g.edge(f"t{len(tree['nodes']) - 1}", "ht")
    return Drawing(f"rnn_cell (tree, base {base})", [g], "nodes: combine and activation")
