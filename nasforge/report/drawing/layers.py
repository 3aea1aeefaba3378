"""Chain and block spaces as layer diagrams (top to bottom, each layer with its size).

Any space plugs in by describing its layers: a method `layer_diagram(arch)` on the space returning
`{"input": str, "layers": [{"label", "detail", "inputs"}], "outputs": [int], "output": str, "caption": str}`
(`inputs` and `outputs` index the layers, -1 is the input; a layer without `inputs` reads the one before,
and without `outputs` the last layer feeds the output). The built-in chain spaces are described here, in
the same form, so one drawer serves them all.
"""

from __future__ import annotations

import re
from typing import Any

from nasforge.core.types import Architecture, JSONDict
from nasforge.report.drawing.model import Drawing, Graph


def layer_drawing(title: str, diagram: JSONDict) -> Drawing:
    layers = list(diagram["layers"])
    g = Graph("layers", direction="TB")
    g.node("in", str(diagram.get("input", "input")), "input", rank=0)
    for i, layer in enumerate(layers):
        g.node(f"l{i}", str(layer["label"]), str(layer.get("kind", "layer")), str(layer.get("detail", "")), rank=i + 1)
        for j in layer.get("inputs", [i - 1]):
            if not -1 <= int(j) < i:
                raise ValueError(f"layer {i} reads {j}: only the input (-1) or earlier layers")
            g.edge("in" if j == -1 else f"l{j}", f"l{i}", dashed=int(j) != i - 1)
    g.node("out", str(diagram.get("output", "output")), "output", rank=len(layers) + 1)
    last = len(layers) - 1
    for j in diagram.get("outputs", [last]):
        g.edge("in" if j == -1 else f"l{j}", "out", dashed=int(j) != last)
    return Drawing(title, [g], str(diagram.get("caption", "")))


def chain_cnn(space: Any, arch: Architecture) -> JSONDict:
    from nasforge.spaces.chain_cnn import stride_text

    layers = space.layers(arch)
    read = {j for layer in layers for j in layer["inputs"]}
    return {
        "input": "image",
        "layers": [{"label": f"conv {lay['height']}×{lay['width']}",
                    "detail": f"{lay['filters']} filters"
                              + (f", stride {stride_text(lay['stride'])}" if lay["stride"] != 1 else ""),
                    "inputs": lay["inputs"] or [-1]} for lay in layers],
        "outputs": [i for i in range(len(layers)) if i not in read],
        "output": "classifier",
        "caption": "dashed: anchor skips (a layer reads the concatenation of the layers its anchors pick); "
                   "layers no later layer reads feed the classifier",
    }


def metaqnn(space: Any, arch: Architecture) -> JSONDict:
    from nasforge.spaces.metaqnn import _parse_state

    names, terminal = space.layer_states(arch)
    sizes = space.sizes(arch)
    layers = []
    for name, size in zip(names, sizes):
        kind, a, b = _parse_state(name)
        where = f"{size}×{size}"
        if kind == "conv":
            layers.append({"label": f"conv {a}×{a}", "detail": f"{b} filters → {where}"})
        elif kind == "pool":
            layers.append({"label": f"max pool {a}×{a}", "detail": f"stride {b} → {where}"})
        else:
            layers.append({"label": "fully connected", "detail": f"{a} units"})
    head = "global avg pool → softmax" if terminal == "gap" else "softmax"
    return {"input": f"image {space.image_size}×{space.image_size}", "layers": layers, "output": head,
            "caption": f"sizes as planned from image_size={space.image_size}"}


_BLOCK_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"res_fc_(\d+)", "residual dense|{0} units"),
    (r"fc_(\d+)", "dense|{0} units"),
    (r"lowrank_(\d+)_r(\d+)", "low-rank dense|{0} units, rank {1}"),
    (r"bottleneck_(\d+)_(\d+)", "bottleneck|{0} → {1} → {0}"),
    (r"conv_(\d+)x(\d+)_(\d+)x(\d+)_(\d+)", "conv {0}×{1} then {2}×{3}|{4} filters"),
    (r"conv_(\d+)x(\d+)_(\d+)", "conv {0}×{1}|{2} filters"),
    (r"downsample_conv_(\d+)", "downsample conv|{0} filters, stride 2"),
    (r"res_conv_(\d+)", "residual conv|{0} filters"),
    (r"(max|avg)_pool_(\d+)x(\d+)", "{0} pool {1}×{2}|"),
    (r"identity", "identity|"),
)


def block_label(name: str) -> tuple[str, str]:
    """A block name of the dnn or cnn vocabulary as (label, size)."""
    for pattern, text in _BLOCK_PATTERNS:
        found = re.fullmatch(pattern, name)
        if found:
            label, detail = text.format(*found.groups()).split("|")
            return label, detail
    return name, ""


def dnn(space: Any, arch: Architecture) -> JSONDict:
    hp = space.hyperparameters(arch)
    layers = [dict(zip(("label", "detail"), block_label(b))) for b in space.block_names(arch)]
    norm = "" if hp["normalization"] == "none" else f", {hp['normalization']} norm"
    return {"input": "features", "layers": layers, "output": "output layer",
            "caption": f"{hp['activation']}{norm}, dropout {hp['dropout']}; {hp['optimizer']}, "
                       f"lr {hp['learning_rate']:g}, decay {hp['lr_decay']:g}, clip {hp['grad_clip']}"}


def cnn(space: Any, arch: Architecture) -> JSONDict:
    from nasforge.spaces.cnn import DENSE_BLOCK_NAMES

    names = space.block_names(space.assemble(arch.tokens))
    layers = []
    pooled = False
    for name in names:
        if name in DENSE_BLOCK_NAMES and not pooled:
            layers.append({"label": "global avg pool", "detail": "", "kind": "head"})
            pooled = True
        layers.append(dict(zip(("label", "detail"), block_label(name))))
    return {"input": "image", "layers": layers, "output": "output layer" if pooled else "global avg pool → output",
            "caption": "conv blocks, then dense blocks after global average pooling"}


def decision_chain(space: Any, arch: Architecture) -> JSONDict:
    """The fallback for a space with no drawer and no `layer_diagram`: its decisions, one box each, in order."""
    steps = [{"label": f"{dec.name}" + (f" [{dec.layer}]" if dec.layer is not None else ""),
              "detail": str(dec.choices[token])} for dec, token in space.walk(arch.tokens)]
    return {"input": "input", "layers": steps, "output": "output",
            "caption": f"{space.name} has no drawing of its own: its decisions in order (give the space a "
                       "layer_diagram(arch) method to draw its layers)"}
