"""A drawing of every space whose nodes and edges are the architecture's, in the model and in the SVG file."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from nasforge.cli.main import main
from nasforge.core import registry
from nasforge.core.types import Architecture
from nasforge.report.drawing import draw, drawing_for, layers
from nasforge.report.drawing.layout import place, ranks_of
from nasforge.report.drawing.model import Graph


def svg_counts(path: Path) -> tuple[int, int]:
    ids = [el.get("id", "") for el in ET.parse(path).iter()]
    return sum(i.startswith("node-") for i in ids), sum(i.startswith("edge-") for i in ids)


def expected(space: object, arch: Architecture) -> list[tuple[int, int]]:
    """(nodes, edges) per graph, counted from the space's own view of the architecture."""
    s: object = space
    name = s.name  # type: ignore[attr-defined]
    if name == "nb201":
        from nasforge.spaces.nb201 import OPS

        return [(4, sum(OPS[t] != "none" for t in arch.tokens))]
    if name in ("darts", "nasnet"):
        return [(2 + s.num_blocks + 1, 2 * s.num_blocks + len(s.concat(arch, cell)))  # type: ignore[attr-defined]
                for cell in ("normal", "reduce")]
    if name == "enas_macro":
        lay = s.layers(arch)  # type: ignore[attr-defined]
        return [(len(lay) + 2, len(lay) + sum(len(x["skips"]) for x in lay) + 1)]
    if name == "rnn_cell":
        if s.cell == "tree":  # type: ignore[attr-defined]
            base = s.base  # type: ignore[attr-defined]
            n = 2 * base - 1
            return [(3 + n + 2, 2 * base + 2 * (n - base) + 1 + 1 + 1)]
        return [(2 + s.num_nodes + 1, 2 + (s.num_nodes - 1) + len(s.loose_ends(arch)))]  # type: ignore[attr-defined]
    if name == "chain_cnn":
        lay = s.layers(arch)  # type: ignore[attr-defined]
        read = {j for x in lay for j in x["inputs"]}
        feeds_classifier = sum(i not in read for i in range(len(lay)))
        return [(len(lay) + 2, sum(max(1, len(x["inputs"])) for x in lay) + feeds_classifier)]
    if name == "metaqnn":
        n = len(s.layer_states(arch)[0])  # type: ignore[attr-defined]
        return [(n + 2, n + 1)]
    if name == "dnn":
        n = len(s.block_names(arch))  # type: ignore[attr-defined]
        return [(n + 2, n + 1)]
    if name == "cnn":
        names = s.block_names(arch)  # type: ignore[attr-defined]
        n = len(names) + any(b.startswith(("fc_", "res_fc_")) for b in names)  # + the global pooling node
        return [(n + 2, n + 1)]
    diagram = s.layer_diagram(arch) if hasattr(s, "layer_diagram") else None  # a space that describes its layers
    if diagram is not None:
        steps = diagram["layers"]
        inputs = sum(len(x.get("inputs", [i - 1])) for i, x in enumerate(steps))
        return [(len(steps) + 2, inputs + len(diagram.get("outputs", [len(steps) - 1])))]
    n = len(list(s.walk(arch.tokens)))  # type: ignore[attr-defined]  # no drawer: its decisions as a chain
    return [(n + 2, n + 1)]


CASES = [(name, {}) for name in registry.available("space")] + [("rnn_cell", {"cell": "tree", "base": 4})]


@pytest.mark.parametrize(("name", "config"), CASES, ids=[f"{n}{'-tree' if c else ''}" for n, c in CASES])
def test_every_space_draws_its_architecture(name: str, config: dict, tmp_path: Path) -> None:
    space = registry.create("space", name, **config)
    rng = np.random.default_rng(5)
    for _ in range(20):  # the model, on many architectures
        arch = space.sample(rng)
        drawing = drawing_for(space, arch)
        assert [(len(g.nodes), len(g.edges)) for g in drawing.graphs] == expected(space, arch)
        for g in drawing.graphs:  # a proper layered layout: every edge goes forward
            ranks = ranks_of(g)
            assert all(ranks[e.source] < ranks[e.target] for e in g.edges)
    arch = space.sample(rng)
    svg = tmp_path / "a.svg"
    drawing = draw(space, arch, svg)
    nodes, edges = svg_counts(svg)
    assert (nodes, edges) == (sum(len(g.nodes) for g in drawing.graphs), sum(len(g.edges) for g in drawing.graphs))
    labels = [e.label for g in drawing.graphs for e in g.edges if e.label]
    ids = [el.get("id", "") for el in ET.parse(svg).iter()]
    assert sum(i.startswith("label-") for i in ids) == len(labels)
    png = tmp_path / "a.png"
    draw(space, arch, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cell_drawings_show_both_cells_and_their_ops() -> None:
    space = registry.create("space", "darts")
    arch = space.sample(np.random.default_rng(0))
    drawing = drawing_for(space, arch)
    assert [g.title for g in drawing.graphs] == ["normal cell", "reduction cell"]
    normal = drawing.graphs[0]
    ops = sorted(e.label for e in normal.edges if e.label)
    assert ops == sorted(op for a, op_a, b, op_b, _ in space.blocks(arch, "normal") for op in (op_a, op_b))
    nb = registry.create("space", "nb201")
    cell = nb.from_string("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|")
    g = drawing_for(nb, cell).graphs[0]
    assert {(e.source, e.target, e.label) for e in g.edges} == {
        ("0", "1", "nor_conv_3x3"), ("1", "2", "skip_connect"), ("0", "3", "avg_pool_3x3"), ("2", "3", "nor_conv_1x1")}


def test_a_new_space_plugs_in_through_layer_diagram() -> None:
    class Blocks:
        name = "blocks"

        def summary(self, arch: Architecture) -> str:
            return "lstm > pool"

        def layer_diagram(self, arch: Architecture) -> dict:
            return {"input": "sequence", "layers": [{"label": "LSTM", "detail": "64 units"},
                                                    {"label": "mean pool", "detail": "", "inputs": [0, -1]}],
                    "output": "head"}

    drawing = drawing_for(Blocks(), Architecture("blocks", (0,)))
    g = drawing.graphs[0]
    assert [n.label for n in g.nodes] == ["sequence", "LSTM", "mean pool", "head"]
    assert [(e.source, e.target, e.dashed) for e in g.edges] == [
        ("in", "l0", False), ("l0", "l1", False), ("in", "l1", True), ("l1", "out", False)]
    with pytest.raises(ValueError, match="only the input"):
        layers.layer_drawing("x", {"layers": [{"label": "a", "inputs": [3]}]})


def test_a_space_without_a_drawer_draws_its_decisions() -> None:
    from nasforge.core.types import Decision
    from nasforge.spaces.base import TokenSpace

    class Tiny(TokenSpace):
        name = "tiny"

        def decision(self, prefix):  # type: ignore[no-untyped-def]
            return Decision("width", (8, 16)) if len(prefix) < 2 else None

    g = drawing_for(Tiny(), Architecture("tiny", (0, 1))).graphs[0]
    assert [n.detail for n in g.nodes[1:-1]] == ["8", "16"] and len(g.edges) == 3


def test_layout_orders_ranks_without_needless_crossings() -> None:
    g = Graph("x")
    for n in ("a", "b", "c", "d"):
        g.node(n, n)
    g.edge("a", "d")
    g.edge("b", "c")
    placed = place(g)
    ys = placed.positions
    assert (ys["a"][1] > ys["b"][1]) == (ys["d"][1] > ys["c"][1])  # a's edge and b's edge do not cross
    with pytest.raises(ValueError):
        g.edge("a", "zz")


def test_show_draw_writes_the_trial(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.report.conftest import write_study

    storage = f"sqlite:///{tmp_path / 's.db'}"
    write_study(storage, name="cells", space_name="nasnet", complete=2, failed=0)
    out = tmp_path / "t.svg"
    assert main(["show", "--study", "cells", "--storage", storage, "--trial", "1", "--draw", str(out)]) == 0
    err = capsys.readouterr().err
    nodes, edges = svg_counts(out)
    assert f"({nodes} nodes, {edges} edges)" in err and nodes == 2 * 8
    assert main(["show", "--study", "cells", "--storage", storage, "--draw", str(tmp_path / "t.txt")]) == 2
    assert "--draw" in capsys.readouterr().err and not (tmp_path / "t.txt").exists()
