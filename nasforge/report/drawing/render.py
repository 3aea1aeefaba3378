"""A placed drawing as a matplotlib figure (no pyplot, no display, no graphviz), saved as SVG or PNG.

Every node and edge artist has a gid (`node-<graph>-<id>`, `edge-<graph>-<n>`), which the SVG keeps as
element ids: a drawing's structure can be checked from the file itself.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nasforge.report.drawing.layout import RANK_GAP, Placed, place
from nasforge.report.drawing.model import Drawing, Graph

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INCH_PER_UNIT = 0.8
CHAR = 0.09  # width of one 9-point character, in layout units at INCH_PER_UNIT
BOX_HEIGHT = {"LR": 0.5, "TB": 0.62}
COLOURS = {"input": "#cfe8cf", "output": "#fde7a9", "node": "#d6e4f5", "layer": "#d6e4f5", "head": "#eadcf2"}
EDGE_COLOUR = "#3b4a5a"
LABEL_PLACES = (0.4, 0.3, 0.5, 0.6, 0.22, 0.7, 0.15, 0.78)  # where along its edge a label may go, in order


@dataclass(frozen=True)
class EdgePath:
    start: tuple[float, float]
    end: tuple[float, float]
    rad: float  # matplotlib's arc3 bend
    label_at: tuple[float, float]
    bulge: tuple[float, float]  # the curve's farthest point from its chord
    clipped: bool  # ends at the boxes' borders (False: starts and ends at the given points, a box's side)


def box_width(graph: Graph) -> dict[str, float]:
    widths = {n.id: CHAR * max(len(_visible(n.label)), 0.85 * len(_visible(n.detail))) + 0.4 for n in graph.nodes}
    if graph.direction == "TB":  # a layer stack reads best with boxes of one width
        widest = max(widths.values(), default=1.0)
        widths = dict.fromkeys(widths, widest)
    return widths


def _visible(text: str) -> str:
    """What a label shows: mathtext's markup ($, braces) takes no room."""
    return text.replace("$", "").replace("{", "").replace("}", "")


def figure(drawing: Drawing) -> Figure:
    from matplotlib.figure import Figure

    placed = [place(g) for g in drawing.graphs]
    widths = [box_width(g) for g in drawing.graphs]
    bounds = [_bounds(g, p, w) for g, p, w in zip(drawing.graphs, placed, widths)]
    spans = [(x1 - x0 + 0.5, y1 - y0 + 0.5) for x0, x1, y0, y1 in bounds]
    fig_width = max(4.0, sum(w for w, _ in spans) * INCH_PER_UNIT + 0.4)
    per_line = max(20, int(fig_width * 15))  # characters of 8-point text across the figure
    title = textwrap.wrap(drawing.title, int(per_line * 0.75)) or [""]
    caption = textwrap.wrap(drawing.caption, per_line)
    top, bottom = 0.35 + 0.2 * len(title), 0.1 + 0.16 * len(caption)
    fig_height = max(2.5, max(h for _, h in spans) * INCH_PER_UNIT + top + bottom)
    fig = Figure(figsize=(fig_width, fig_height))
    grid = fig.add_gridspec(1, len(drawing.graphs), width_ratios=[w for w, _ in spans], left=0.02, right=0.98,
                            top=1 - top / fig_height, bottom=bottom / fig_height, wspace=0.05)
    for k, (graph, where, width) in enumerate(zip(drawing.graphs, placed, widths)):
        ax = fig.add_subplot(grid[0, k])
        _draw_graph(ax, graph, where, width, str(k))
        if len(drawing.graphs) > 1:
            ax.set_title(graph.title, fontsize=10)
        x0, x1, y0, y1 = bounds[k]
        ax.set_xlim(x0 - 0.25, x1 + 0.25)
        ax.set_ylim(y0 - 0.25, y1 + 0.25)
        ax.set_aspect("equal", adjustable="box")
        ax.set_axis_off()
    fig.suptitle("\n".join(title), fontsize=11, y=1 - 0.1 / fig_height, va="top")
    if caption:
        fig.text(0.5, 0.08 / fig_height, "\n".join(caption), ha="center", va="bottom", fontsize=8, color="#555")
    return fig



def _edges(graph: Graph, placed: Placed, widths: dict[str, float]) -> list[EdgePath]:
    """Where each edge runs: its ends, its arc3 bend and its label's place.

    Edges that jump ranks bend so they pass beside the nodes between; in a layer stack they leave and
    enter at the boxes' sides. Each label takes the first place along its edge, from a little after its
    source, that overlaps no box and no label placed before it."""
    ranks = {n.id: _rank(placed, graph, n.id) for n in graph.nodes}
    pairs = Counter((e.source, e.target) for e in graph.edges)
    seen: Counter[tuple[str, str]] = Counter()
    gap = RANK_GAP[graph.direction]
    half = BOX_HEIGHT[graph.direction] / 2
    taken = [(x - widths[n] / 2, y - half, x + widths[n] / 2, y + half) for n, (x, y) in placed.positions.items()]
    out = []
    for e in graph.edges:
        (x1, y1), (x2, y2) = placed.positions[e.source], placed.positions[e.target]
        span = (ranks[e.target] - ranks[e.source]) / gap
        side_exit = graph.direction == "TB" and abs(span) > 1.01 and pairs[(e.source, e.target)] == 1
        if side_exit:
            side = 1 if sum(map(ord, e.source)) % 2 else -1
            x1, x2 = x1 + side * widths[e.source] / 2, x2 + side * widths[e.target] / 2
            rad = -side * 0.3 * (1 if y2 < y1 else -1)
        else:
            rad = _bend(graph, span, pairs[(e.source, e.target)], seen[(e.source, e.target)], e.source)
        seen[(e.source, e.target)] += 1
        control = ((x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1))  # arc3's control point
        bulge = _on_curve((x1, y1), control, (x2, y2), 0.5)
        label_at = bulge
        if e.label:
            w, h = CHAR * 0.85 * len(e.label) + 0.1, 0.24
            candidates = [_on_curve((x1, y1), control, (x2, y2), t) for t in LABEL_PLACES]
            rects = [(x - w / 2, y - h / 2, x + w / 2, y + h / 2) for x, y in candidates]
            overlaps = [sum(_overlap(r, other) for other in taken) for r in rects]
            best = min(range(len(rects)), key=lambda i: (overlaps[i] > 1e-9, overlaps[i], i))
            label_at = candidates[best]
            taken.append(rects[best])
        out.append(EdgePath((x1, y1), (x2, y2), rad, label_at, bulge, not side_exit))
    return out


def _on_curve(a: tuple[float, float], c: tuple[float, float], b: tuple[float, float], t: float
              ) -> tuple[float, float]:
    """The point at `t` of the quadratic Bézier curve a-c-b (what arc3 draws)."""
    return ((1 - t) ** 2 * a[0] + 2 * (1 - t) * t * c[0] + t**2 * b[0],
            (1 - t) ** 2 * a[1] + 2 * (1 - t) * t * c[1] + t**2 * b[1])


def _overlap(r: tuple[float, float, float, float], q: tuple[float, float, float, float]) -> float:
    return max(0.0, min(r[2], q[2]) - max(r[0], q[0])) * max(0.0, min(r[3], q[3]) - max(r[1], q[1]))


def _bounds(graph: Graph, placed: Placed, widths: dict[str, float]) -> tuple[float, float, float, float]:
    h = BOX_HEIGHT[graph.direction] / 2
    xs = [x + s * widths[n] / 2 for n, (x, _) in placed.positions.items() for s in (-1, 1)]
    ys = [y + s * h for _, y in placed.positions.values() for s in (-1, 1)]
    for path in _edges(graph, placed, widths):
        xs += [path.label_at[0], path.bulge[0]]
        ys += [path.label_at[1], path.bulge[1]]
    return min(xs), max(xs), min(ys), max(ys)


def _draw_graph(ax: Any, graph: Graph, placed: Placed, widths: dict[str, float], tag: str) -> None:
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    height = BOX_HEIGHT[graph.direction]
    boxes = {}
    for n in graph.nodes:
        x, y = placed.positions[n.id]
        w = widths[n.id]
        box = FancyBboxPatch((x - w / 2, y - height / 2), w, height, boxstyle="round,pad=0,rounding_size=0.12",
                             fc=COLOURS.get(n.kind, COLOURS["node"]), ec="#44546a", lw=1.0, zorder=3,
                             gid=f"node-{tag}-{n.id}")
        ax.add_patch(box)
        boxes[n.id] = box
        if n.detail:
            ax.text(x, y + 0.09, n.label, ha="center", va="center", fontsize=9, zorder=4)
            ax.text(x, y - 0.15, n.detail, ha="center", va="center", fontsize=7.5, color="#333", zorder=4)
        else:
            ax.text(x, y, n.label, ha="center", va="center", fontsize=9, zorder=4)
    for i, (e, path) in enumerate(zip(graph.edges, _edges(graph, placed, widths))):
        arrow = FancyArrowPatch(path.start, path.end, patchA=boxes[e.source] if path.clipped else None,
                                patchB=boxes[e.target] if path.clipped else None, arrowstyle="-|>", mutation_scale=11,
                                connectionstyle=f"arc3,rad={path.rad}", color=EDGE_COLOUR, lw=1.1,
                                linestyle="--" if e.dashed else "-", zorder=2, shrinkA=1, shrinkB=1,
                                gid=f"edge-{tag}-{i}")
        ax.add_patch(arrow)
        if e.label:
            ax.text(*path.label_at, e.label, ha="center", va="center", fontsize=7.5, zorder=5, color="#1a2a3a",
                    bbox={"boxstyle": "round,pad=0.12", "fc": "white", "ec": "none", "alpha": 0.9},
                    gid=f"label-{tag}-{i}")


def _rank(placed: Placed, graph: Graph, node: str) -> float:
    x, y = placed.positions[node]
    return x if graph.direction == "LR" else -y


def _bend(graph: Graph, span: float, parallel: int, index: int, source: str) -> float:
    """Straight between neighbouring ranks; bent when the edge jumps ranks (edges from alternate sources to
    alternate sides) or shares its two ends with another edge."""
    if parallel > 1:
        return 0.3 * (index - (parallel - 1) / 2) * 2
    if abs(span) <= 1.01:
        return 0.0
    return 0.2 if sum(map(ord, source)) % 2 else -0.2
