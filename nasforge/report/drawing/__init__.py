"""Architecture drawings for every space, from Python alone (matplotlib; no graphviz binary needed).

`drawing_for(space, arch)` gives the model (graphs of nodes and edges), `draw(space, arch, out)` writes it as
SVG or PNG. Cell spaces become DAGs with op-labelled edges (`cells.py`); chain and block spaces become layer
diagrams (`layers.py`), and a new space is drawn as one by giving it a `layer_diagram(arch)` method.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nasforge.core.errors import UserError
from nasforge.core.types import Architecture
from nasforge.report.drawing import cells, layers
from nasforge.report.drawing.model import Drawing, Edge, Graph, Node
from nasforge.storage.sql import TrialRow

CELL_DRAWERS: dict[str, Callable[[Any, Architecture], Drawing]] = {
    "nb201": cells.nb201, "darts": cells.cell_pair, "nasnet": cells.cell_pair, "enas_macro": cells.enas_macro,
    "rnn_cell": cells.rnn_cell,
}
LAYER_DIAGRAMS: dict[str, Callable[[Any, Architecture], dict[str, Any]]] = {
    "chain_cnn": layers.chain_cnn, "metaqnn": layers.metaqnn, "dnn": layers.dnn, "cnn": layers.cnn,
}


def drawing_for(space: Any, arch: Architecture) -> Drawing:
    if space.name in CELL_DRAWERS:
        return CELL_DRAWERS[space.name](space, arch)
    describe = getattr(space, "layer_diagram", None) or (
        (lambda a: LAYER_DIAGRAMS[space.name](space, a)) if space.name in LAYER_DIAGRAMS else None)
    diagram = describe(arch) if describe is not None else layers.decision_chain(space, arch)
    return layers.layer_drawing(f"{space.name}: {len(diagram['layers'])} layers", diagram)


def draw(space: Any, arch: Architecture, out: str | Path | None = None) -> Drawing:
    """The drawing model; also written to `out` (.svg or .png) when given."""
    from nasforge.report.plots import check_out

    path = check_out(out) if out is not None else None
    drawing = drawing_for(space, arch)
    if path is not None:
        from nasforge.report.drawing.render import figure
        from nasforge.report.plots import save

        save(figure(drawing), path)
    return drawing


def draw_trial(space: Any, trial: TrialRow, out: str | Path | None = None) -> Drawing:
    try:
        arch = space.from_json(trial.arch)
    except Exception as exc:
        raise UserError(f"trial {trial.number} has no architecture of space {space.name!r} to draw "
                        f"(an ensemble or distillation trial draws its members)") from exc
    return draw(space, arch, out)


def svg_text(drawing: Drawing) -> str:
    """The drawing as SVG text (the dashboard serves it)."""
    import io

    from nasforge.report.drawing.render import figure

    buffer = io.StringIO()
    figure(drawing).savefig(buffer, format="svg")
    return buffer.getvalue()


__all__ = ["Drawing", "Edge", "Graph", "Node", "draw", "draw_trial", "drawing_for", "svg_text"]
