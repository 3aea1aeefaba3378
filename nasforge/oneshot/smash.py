"""SMASH (Brock et al., 2018): one hypernetwork writes the cell convolutions of any architecture.

The network skeleton of a space (stem, reductions, classifier, the cells' fixed pre-processing)
keeps ordinary trained weights; the ops inside the cells store none. Their convolutions are
generated for each architecture by a hypernetwork from an encoding of that architecture, so one
training run (a random architecture per step) gives weights for every architecture, and many
architectures can be ranked by their validation accuracy with generated weights.

Memory-bank encoding. In SMASH a network is a set of memory banks (feature maps) that each op
reads from and writes to. Here a bank is a cell state (NAS-Bench-201: node 0..3; DARTS: the two
cell inputs and the blocks), and every edge of the cell is an op slot that reads one bank and adds
into another. Every convolution of an op (a "piece") is split into chunks of `chunk` output by
`chunk` input channels; each chunk is one position of the embedding tensor, whose channels say:
which bank the op reads and which it writes (one-hot each), its op kind, which piece of the op it
is, the piece's kernel height/width, dilation and stride, whether it is depthwise, which cell of
the network it sits in (and whether that is a reduction cell), the cell's width, the chunk's
output/input index, and (`cell_context`, off by default) the whole cell's wiring, every slot's
read bank and op kind, standing in for the context the paper's 3x3 hypernet convolutions see.
As in the paper, the hypernetwork is a stack of 1x1 convolutions over that tensor
(`nn.Conv1d(kernel_size=1)` over the positions), so each position independently becomes one
block of weights; a dense head gives `chunk x chunk x K x K` values (K the largest dense kernel
of the space, cropped at the centre for smaller or 1xk kernels), a depthwise head
`chunk x K_dw x K_dw`. We chose the paper's 1x1-conv form over an MLP on the flat encoding because
its size does not grow with the network: any depth and width reuse the same hypernetwork.

Op table mapping. Ops are the modules `nasforge.models.ops.make_op` builds (affine-free batch
norm on batch statistics); `torch.func.functional_call` swaps in the generated tensor for every
`Conv2d` weight of that module, so the searched op is exactly the op the final network trains:
ReLU-conv-BN (`conv_*`, `nor_conv_*`: one dense piece), `sep_conv_*` (depthwise, pointwise,
depthwise, pointwise), `dil_conv_*` (depthwise dilated, pointwise), `conv_1xk_kx1` (1xk, kx1),
`skip_connect` at stride 2 (factorized reduce: two 1x1 pieces). `none`, pooling and stride-1 skip
have no weights and run as the op table's modules.
"""

from __future__ import annotations

import csv
import math
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture, JSONDict
from nasforge.data.base import CLASSIFICATION, Dataset, DataSpec, stratified_order
from nasforge.models.nb201_net import ResidualReduction
from nasforge.models.networks import Classifier, as_images, image_shape
from nasforge.models.ops import FactorizedReduce, ReLUConvBN, make_op
from nasforge.oneshot.base import OneShotResult, ProgressFn
from nasforge.spaces.darts import DARTSSpace
from nasforge.spaces.nb201 import EDGES, NODES, NB201Space
from nasforge.spaces.nb201 import OPS as NB201_OPS

Apply = Callable[[int, torch.Tensor], torch.Tensor]
Weights = list[dict[str, torch.Tensor]]


def use_batch_statistics(module: nn.Module) -> nn.Module:
    """Every batch norm normalises with the batch's own statistics, in training and in scoring.

    Running averages would mix the statistics of every sampled architecture; the one-shot
    practice (DARTS, ENAS) is to score each candidate with batch statistics instead.
    """
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None
    return module


# ---- the skeletons: everything but the cell ops, which take weights from outside -------------------------
@dataclass(frozen=True)
class OpSlot:
    """One op of the network in memory-bank terms: in cell `cell` it reads bank `read` and adds into `write`."""

    cell: int
    read: int
    write: int
    op: str
    channels: int
    stride: int
    reduction: bool


class NB201Skeleton(nn.Module):
    """NAS-Bench-201's network (as `nb201_net`) whose cells' edges are applied from outside."""

    op_vocabulary: tuple[str, ...] = NB201_OPS
    num_banks = NODES
    slots_per_cell = len(EDGES)
    strides: tuple[int, ...] = (1,)

    def __init__(self, in_channels: int, num_outputs: int, channels: int, cells_per_stage: int) -> None:
        super().__init__()
        self.cells_per_stage = cells_per_stage
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.reductions = nn.ModuleList([ResidualReduction(channels, 2 * channels),
                                         ResidualReduction(2 * channels, 4 * channels)])
        self.head = nn.Sequential(nn.BatchNorm2d(4 * channels), nn.ReLU(inplace=False))
        self.classifier = Classifier(4 * channels, num_outputs)
        self.cell_widths = [channels * 2 ** stage for stage in range(3) for _ in range(cells_per_stage)]
        self.cell_reductions = [False] * len(self.cell_widths)
        use_batch_statistics(self)

    def slots(self, arch: Architecture) -> list[OpSlot]:
        ops = [NB201_OPS[t] for t in arch.tokens]
        return [OpSlot(cell, j, i, ops[k], width, 1, False)
                for cell, width in enumerate(self.cell_widths) for k, (i, j) in enumerate(EDGES)]

    def run(self, x: torch.Tensor, slots: Sequence[OpSlot], apply: Apply) -> torch.Tensor:
        x = self.stem(as_images(x))
        k = 0
        for stage in range(3):
            if stage > 0:
                x = self.reductions[stage - 1](x)
            for _ in range(self.cells_per_stage):
                nodes = [x]
                for node in range(1, NODES):
                    total = apply(k, nodes[slots[k].read])
                    for j in range(1, node):
                        total = total + apply(k + j, nodes[slots[k + j].read])
                    k += node
                    nodes.append(total)
                x = nodes[-1]
        return self.classifier(self.head(x))


class DARTSSkeleton(nn.Module):
    """The DARTS cell network (as `networks.CellNetwork`): stem and per-cell 1x1 pre-processing are stored;
    the two ops of every block are applied from outside."""

    strides: tuple[int, ...] = (1, 2)

    def __init__(self, space: DARTSSpace, in_channels: int, num_outputs: int, channels: int, layers: int,
                 stem_multiplier: int = 3) -> None:
        super().__init__()
        self.space = space
        self.op_vocabulary = space.ops_vocabulary
        self.num_banks = space.num_blocks + 2
        self.slots_per_cell = 2 * space.num_blocks
        plan = DARTSSpace(space.num_blocks, layers, channels, space.ops).plan()
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_pp, c_p, c = c_stem, c_stem, channels
        pre0: list[nn.Module] = []
        pre1: list[nn.Module] = []
        self.cell_widths: list[int] = []
        reduction_prev = False
        for reduction in plan:
            c = 2 * c if reduction else c
            pre0.append(FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1))
            pre1.append(ReLUConvBN(c_p, c, 1))
            self.cell_widths.append(c)
            c_pp, c_p, reduction_prev = c_p, space.num_blocks * c, reduction
        self.cell_reductions = list(plan)
        self.pre0 = nn.ModuleList(pre0)
        self.pre1 = nn.ModuleList(pre1)
        self.classifier = Classifier(c_p, num_outputs)
        use_batch_statistics(self)

    def slots(self, arch: Architecture) -> list[OpSlot]:
        out: list[OpSlot] = []
        for cell, (width, reduction) in enumerate(zip(self.cell_widths, self.cell_reductions)):
            for b, (a, op_a, b_in, op_b, _) in enumerate(self.space.blocks(arch, "reduce" if reduction else "normal")):
                for src, op in ((a, op_a), (b_in, op_b)):
                    out.append(OpSlot(cell, src, b + 2, op, width, 2 if reduction and src < 2 else 1, reduction))
        return out

    def run(self, x: torch.Tensor, slots: Sequence[OpSlot], apply: Apply) -> torch.Tensor:
        s0 = s1 = self.stem(as_images(x))
        k = 0
        for pre0, pre1 in zip(self.pre0, self.pre1):
            states = [pre0(s0), pre1(s1)]
            for _ in range(self.space.num_blocks):
                states.append(apply(k, states[slots[k].read]) + apply(k + 1, states[slots[k + 1].read]))
                k += 2
            s0, s1 = s1, torch.cat(states[2:], dim=1)
        return self.classifier(s1)


Skeleton = NB201Skeleton | DARTSSkeleton


def make_skeleton(space: Any, spec: DataSpec, channels: int | None, depth: int | None) -> Skeleton:
    """The skeleton of `space` at the space's own width and depth unless `channels`/`depth` override them."""
    in_channels, _, _ = image_shape(spec.input_shape, "smash")
    width = int(channels if channels is not None else space.channels)
    if isinstance(space, NB201Space):
        return NB201Skeleton(in_channels, int(spec.num_outputs), width,
                             int(depth if depth is not None else space.cells_per_stage))
    if isinstance(space, DARTSSpace):
        return DARTSSkeleton(space, in_channels, int(spec.num_outputs), width,
                             int(depth if depth is not None else space.layers))
    raise ConfigError(f"smash: space {getattr(space, 'name', space)!r} is not supported; use nb201 or darts")


# ---- op templates: the op table's modules, whose conv weights are generated --------------------------------
@dataclass(frozen=True)
class Piece:
    """One `Conv2d` of an op module: the weight the hypernetwork generates for it."""

    name: str  # parameter name inside the op module, e.g. "1.weight"
    index: int  # its order among the op's convolutions
    out_channels: int
    in_per_group: int
    kernel: tuple[int, int]
    dilation: int
    stride: int
    depthwise: bool

    @property
    def fan_in(self) -> int:
        return self.in_per_group * self.kernel[0] * self.kernel[1]


def op_template(op: str, channels: int, stride: int) -> tuple[nn.Module, tuple[Piece, ...]]:
    """The op table's module for `op` (no BN affine, batch statistics) and its convolutions in order."""
    module = use_batch_statistics(make_op(op, channels, channels, stride, affine=False))
    pieces: list[Piece] = []
    for name, conv in module.named_modules():
        if not isinstance(conv, nn.Conv2d):
            continue
        if conv.bias is not None or conv.groups not in (1, conv.in_channels):
            raise ConfigError(f"smash: op {op!r} has a convolution the hypernetwork cannot generate")
        kh, kw = conv.kernel_size
        pieces.append(Piece(f"{name}.weight", len(pieces), conv.out_channels, conv.in_channels // conv.groups,
                            (int(kh), int(kw)), int(conv.dilation[0]), int(conv.stride[0]), conv.groups > 1))
    weights = {f"{n}.weight" for n, m in module.named_modules() if isinstance(m, nn.Conv2d)}
    other = [n for n, _ in module.named_parameters() if n not in weights]
    if other:
        raise ConfigError(f"smash: op {op!r} has parameters the hypernetwork cannot generate: {other}")
    for p in module.parameters():
        p.requires_grad_(False)  # placeholders: functional_call replaces every one of them
    return module, tuple(pieces)


# ---- the encoding --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlacedPiece:
    """A piece of slot `slot` whose rows in the dense (or depthwise) embedding start at `start`."""

    slot: int
    piece: Piece
    start: int
    rows: int  # output chunks
    cols: int  # input chunks (1 for depthwise)


@dataclass
class Plan:
    """An architecture laid out for the hypernetwork: its slots and its embedding positions."""

    slots: list[OpSlot]
    pieces: list[PlacedPiece]
    dense: np.ndarray  # (positions, channels)
    depthwise: np.ndarray

    def embedding(self) -> np.ndarray:
        """The embedding tensor (channels, positions): dense positions, then depthwise ones."""
        return np.concatenate([self.dense, self.depthwise], axis=0).T


class Encoder:
    """Memory-bank encoding: one feature vector per (piece, output chunk, input chunk) position."""

    def __init__(self, skeleton: Skeleton, pieces: dict[tuple[str, int, int], tuple[Piece, ...]], chunk: int,
                 cell_context: bool = False) -> None:
        self.skeleton = skeleton
        self.cell_context = cell_context
        self.pieces = pieces
        self.chunk = chunk
        all_pieces = [p for ps in pieces.values() for p in ps]
        self.kernels = sorted({k for p in all_pieces for k in p.kernel} | {1})
        self.dilations = sorted({p.dilation for p in all_pieces} | {1})
        self.widths = sorted(set(skeleton.cell_widths))
        self.max_chunks = max(1, math.ceil(max(self.widths) / chunk))
        sizes = {"read": skeleton.num_banks, "write": skeleton.num_banks, "op": len(skeleton.op_vocabulary),
                 "piece": max([len(ps) for ps in pieces.values()] + [1]), "kernel_h": len(self.kernels),
                 "kernel_w": len(self.kernels), "dilation": len(self.dilations), "stride": 2, "depthwise": 1,
                 "cell": len(skeleton.cell_widths), "reduction": 1, "width": len(self.widths),
                 "out_chunk": self.max_chunks, "in_chunk": self.max_chunks,
                 "context": skeleton.slots_per_cell * (skeleton.num_banks + len(skeleton.op_vocabulary))
                 if cell_context else 0}
        self.offsets: dict[str, int] = {}
        total = 0
        for name, size in sizes.items():
            self.offsets[name] = total
            total += size
        self.channels = total

    def plan(self, arch: Architecture) -> Plan:
        slots = self.skeleton.slots(arch)
        dense: list[np.ndarray] = []
        depthwise: list[np.ndarray] = []
        placed: list[PlacedPiece] = []
        counts = [0, 0]
        contexts = self._contexts(slots)
        for s, slot in enumerate(slots):
            for piece in self.pieces[(slot.op, slot.channels, slot.stride)]:
                block = self._positions(slot, piece, contexts[slot.cell])
                rows = math.ceil(piece.out_channels / self.chunk)
                kind = int(piece.depthwise)
                placed.append(PlacedPiece(s, piece, counts[kind], rows, len(block) // rows))
                counts[kind] += len(block)
                (depthwise if piece.depthwise else dense).append(block)
        empty = np.zeros((0, self.channels), dtype=np.float32)
        return Plan(slots, placed, np.concatenate(dense) if dense else empty,
                    np.concatenate(depthwise) if depthwise else empty)

    def _contexts(self, slots: Sequence[OpSlot]) -> list[np.ndarray]:
        """Per cell, every slot's read bank and op kind (one-hot each): the whole cell, seen from each position.

        The paper's hypernet has 3x3 convolutions, so a layer's weights also depend on its neighbours'
        encodings; this context gives our position-wise hypernet that architecture-wide conditioning.
        Off by default, so a conv's weights are shared by every architecture with that conv in that slot.
        """
        banks, vocab = self.skeleton.num_banks, self.skeleton.op_vocabulary
        width = banks + len(vocab)
        out = [np.zeros(self.skeleton.slots_per_cell * width if self.cell_context else 0, dtype=np.float32)
               for _ in self.skeleton.cell_widths]
        for k, slot in enumerate(slots if self.cell_context else ()):
            at = (k % self.skeleton.slots_per_cell) * width
            out[slot.cell][at + slot.read] = 1.0
            out[slot.cell][at + banks + vocab.index(slot.op)] = 1.0
        return out

    def _positions(self, slot: OpSlot, piece: Piece, context: np.ndarray) -> np.ndarray:
        """The rows of one piece: its shared features, then one-hot output and input chunk indices."""
        base = np.zeros(self.channels, dtype=np.float32)
        on = self.offsets
        base[on["context"]: on["context"] + len(context)] = context
        base[on["read"] + slot.read] = 1.0
        base[on["write"] + slot.write] = 1.0
        base[on["op"] + self.skeleton.op_vocabulary.index(slot.op)] = 1.0
        base[on["piece"] + piece.index] = 1.0
        base[on["kernel_h"] + self.kernels.index(piece.kernel[0])] = 1.0
        base[on["kernel_w"] + self.kernels.index(piece.kernel[1])] = 1.0
        base[on["dilation"] + self.dilations.index(piece.dilation)] = 1.0
        base[on["stride"] + (piece.stride > 1)] = 1.0
        base[on["depthwise"]] = float(piece.depthwise)
        base[on["cell"] + slot.cell] = 1.0
        base[on["reduction"]] = float(slot.reduction)
        base[on["width"] + self.widths.index(slot.channels)] = 1.0
        rows = math.ceil(piece.out_channels / self.chunk)
        cols = 1 if piece.depthwise else math.ceil(piece.in_per_group / self.chunk)
        block = np.tile(base, (rows * cols, 1))
        out_idx, in_idx = np.divmod(np.arange(rows * cols), cols)
        block[np.arange(rows * cols), on["out_chunk"] + out_idx] = 1.0
        if not piece.depthwise:
            block[np.arange(rows * cols), on["in_chunk"] + in_idx] = 1.0
        return block


# ---- the hypernetwork and the whole one-shot model ----------------------------------------------------------
class HyperNet(nn.Module):
    """1x1 convolutions over the embedding's positions, then a dense and a depthwise weight head."""

    def __init__(self, in_channels: int, hidden: int, layers: int, dense_out: int, depthwise_out: int) -> None:
        super().__init__()
        trunk: list[nn.Module] = []
        c = in_channels
        for _ in range(layers):
            trunk += [nn.Conv1d(c, hidden, 1), nn.LeakyReLU(0.02)]
            c = hidden
        self.trunk = nn.Sequential(*trunk)
        self.dense = nn.Conv1d(c, dense_out, 1, bias=False)
        self.depthwise = nn.Conv1d(c, depthwise_out, 1, bias=False)

    def forward(self, dense: torch.Tensor, depthwise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(positions, channels)` each -> `(positions, head size)` each."""
        n = dense.shape[0]
        h = self.trunk(torch.cat([dense, depthwise]).T.unsqueeze(0))
        empty = h.new_zeros(0)
        d = self.dense(h[:, :, :n])[0].T if n else empty
        w = self.depthwise(h[:, :, n:])[0].T if depthwise.shape[0] else empty
        return d, w


class SMASHNetwork(nn.Module):
    """Skeleton + hypernetwork: `forward(x, arch)` runs `arch` with freshly generated cell weights."""

    def __init__(self, space: Any, spec: DataSpec, *, channels: int | None = None, depth: int | None = None,
                 chunk: int = 8, hidden: int = 256, hyper_layers: int = 2, cell_context: bool = False) -> None:
        super().__init__()
        self.skeleton = make_skeleton(space, spec, channels, depth)
        self.chunk = int(chunk)
        # op modules are looked up, never trained: kept out of the parameter tree
        self.templates: dict[tuple[str, int, int], nn.Module] = {}
        pieces: dict[tuple[str, int, int], tuple[Piece, ...]] = {}
        for op in self.skeleton.op_vocabulary:
            for width in sorted(set(self.skeleton.cell_widths)):
                for stride in self.skeleton.strides:
                    self.templates[(op, width, stride)], pieces[(op, width, stride)] = op_template(op, width, stride)
        self.encoder = Encoder(self.skeleton, pieces, self.chunk, cell_context)
        all_pieces = [p for ps in pieces.values() for p in ps]
        self.dense_kernel = max([max(p.kernel) for p in all_pieces if not p.depthwise] + [1])
        self.depthwise_kernel = max([max(p.kernel) for p in all_pieces if p.depthwise] + [1])
        self.hypernet = HyperNet(self.encoder.channels, int(hidden), int(hyper_layers),
                                 self.chunk * self.chunk * self.dense_kernel ** 2,
                                 self.chunk * self.depthwise_kernel ** 2)

    def encode(self, arch: Architecture) -> torch.Tensor:
        """The architecture's embedding tensor, (encoding channels, positions)."""
        return torch.from_numpy(self.encoder.plan(arch).embedding())

    def generate(self, plan: Plan) -> Weights:
        """One `{parameter name: weight}` dict per slot (empty for parameter-free ops)."""
        weights: Weights = [{} for _ in plan.slots]
        if not plan.pieces:  # only parameter-free ops: nothing to generate
            return weights
        device = next(self.hypernet.parameters()).device
        dense, depthwise = self.hypernet(torch.from_numpy(plan.dense).to(device),
                                         torch.from_numpy(plan.depthwise).to(device))
        for placed in plan.pieces:
            source = depthwise if placed.piece.depthwise else dense
            rows = source[placed.start: placed.start + placed.rows * placed.cols]
            weights[placed.slot][placed.piece.name] = self._assemble(rows, placed)
        return weights

    def _assemble(self, rows: torch.Tensor, placed: PlacedPiece) -> torch.Tensor:
        """Chunks -> the conv weight `(out, in / groups, kh, kw)`, centre-cropped, scaled by 1/sqrt(fan-in)."""
        piece, c = placed.piece, self.chunk
        if piece.depthwise:
            k = self.depthwise_kernel
            full = rows.reshape(placed.rows * c, 1, k, k)
        else:
            k = self.dense_kernel
            full = rows.reshape(placed.rows, placed.cols, c, c, k, k).permute(0, 2, 1, 3, 4, 5)
            full = full.reshape(placed.rows * c, placed.cols * c, k, k)
        kh, kw = piece.kernel
        top, left = (k - kh) // 2, (k - kw) // 2
        weight = full[:piece.out_channels, :piece.in_per_group, top:top + kh, left:left + kw]
        return weight * (1.0 / math.sqrt(piece.fan_in))

    def run(self, x: torch.Tensor, plan: Plan, weights: Weights) -> torch.Tensor:
        """Logits of the planned architecture with the given generated weights."""
        def apply(k: int, h: torch.Tensor) -> torch.Tensor:
            slot = plan.slots[k]
            template = self.templates[(slot.op, slot.channels, slot.stride)]
            if not weights[k]:
                return template(h)  # type: ignore[no-any-return]
            return functional_call(template, weights[k], (h,))  # type: ignore[no-any-return]

        return self.skeleton.run(x, plan.slots, apply)

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        plan = self.encoder.plan(arch)
        return self.run(x, plan, self.generate(plan))


# ---- the search -------------------------------------------------------------------------------------------------
def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated on the device; CPU: the process's peak resident set (all of it, not only SMASH)."""
    if device.type == "cuda":
        return float(torch.cuda.max_memory_allocated(device)) / 2 ** 20
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024.0


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Rank correlation, None when undefined (fewer than 3 pairs or a constant side)."""
    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    from scipy.stats import spearmanr

    value = float(spearmanr(a, b)[0])
    return value if math.isfinite(value) else None


def read_reference(path: str, column: str) -> dict[str, float]:
    """arch_str -> value from a NAS-Bench-201 style CSV (e.g. the shared 12-epoch table)."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise ConfigError(f"smash: reference_table {path}: {exc.strerror}") from exc
    if not rows or "arch_str" not in rows[0] or column not in rows[0]:
        raise ConfigError(f"smash: reference_table {path} needs columns 'arch_str' and {column!r}")
    return {row["arch_str"]: float(row[column]) for row in rows}


@dataclass
class _Data:
    x: torch.Tensor
    y: torch.Tensor


class _FromScale:
    """An option not given: its value comes from the `scale` preset (`nasforge options smash` shows this)."""

    def __repr__(self) -> str:
        return "(from scale)"


PRESET: Any = _FromScale()
# `scale` presets. "cpu" fits a 2-core CPU in about a minute on the CIFAR-10 subset with each space at its
# default size, by ranking a smaller proxy (SPACE_SCALES; bench/results/smash_defaults.md); "paper" is the
# authors' reference code's scale (100 training epochs of batch 50, 500 random architectures ranked), for a
# GPU; "full" was the earlier CPU default.
SCALES: dict[str, dict[str, Any]] = {
    "cpu": {"epochs": 4, "steps": 40, "batch_size": 64, "num_candidates": 60, "valid_batches": 2, "depth": None},
    "full": {"epochs": 10, "steps": None, "batch_size": 64, "num_candidates": 300, "valid_batches": 4, "depth": None},
    "paper": {"epochs": 100, "steps": None, "batch_size": 50, "num_candidates": 500, "valid_batches": 4,
              "depth": None},
}
# A space's own values within a preset, where the space's cost per step differs (measured, as above).
SPACE_SCALES: dict[tuple[str, str], dict[str, Any]] = {
    ("cpu", "nb201"): {"depth": 1, "epochs": 20},
    ("cpu", "darts"): {"depth": 3, "epochs": 3, "num_candidates": 40},
}


class SMASH:
    """SMASH search; options are JSON keyword arguments (defaults sized for a CPU by `scale`).

    `epochs` x `steps` training steps (`steps` None: one pass over the training split per epoch), each on
    a fresh random architecture; then `num_candidates` distinct architectures ranked by accuracy with
    generated weights on `valid_batches` x `valid_batch_size` fixed validation rows. `channels`/`depth`
    shrink the proxy network (depth: cells per stage for nb201, layers for darts); `chunk`, `hidden`
    and `hyper_layers` size the hypernetwork; `cell_context` adds the whole cell's wiring to every
    position's encoding. `rank_by`: "accuracy" (the paper's validation error) or
    "loss" (smoother on a few hundred rows). With `reference_table` (a CSV with `arch_str` and
    `reference_column`, nb201 only) the ranking's Spearman correlation with the table is reported.
    `scale` ("cpu", "full" or "paper") picks the defaults of `epochs`, `steps`, `batch_size`, `num_candidates`
    and `valid_batches` (SCALES); an option given explicitly always wins.
    """

    name = "smash"

    def __init__(self, epochs: int = PRESET, steps: int | None = PRESET, batch_size: int = PRESET,
                 learning_rate: float = 1e-3, weight_decay: float = 0.0, grad_clip: float = 5.0,
                 num_candidates: int = PRESET, valid_batches: int = PRESET, valid_batch_size: int = 128,
                 channels: int | None = None, depth: int | None = PRESET, chunk: int = 8, hidden: int = 256,
                 hyper_layers: int = 2, cell_context: bool = False, rank_by: str = "accuracy",
                 reference_table: str | None = None,
                 reference_column: str = "cifar10_valid", scale: str = "cpu") -> None:
        if scale not in SCALES:
            raise ConfigError(f"smash: scale must be one of {', '.join(SCALES)}, got {scale!r}")
        preset = SCALES[scale]
        given: dict[str, Any] = {"epochs": epochs, "steps": steps, "batch_size": batch_size,
                                 "num_candidates": num_candidates, "valid_batches": valid_batches, "depth": depth}
        self._given = {name for name, value in given.items() if value is not PRESET}
        chosen = {name: preset[name] if value is PRESET else value for name, value in given.items()}
        epochs, steps, batch_size = chosen["epochs"], chosen["steps"], chosen["batch_size"]
        num_candidates, valid_batches, depth = chosen["num_candidates"], chosen["valid_batches"], chosen["depth"]
        self.scale = scale
        for label, value in (("epochs", epochs), ("batch_size", batch_size), ("num_candidates", num_candidates),
                             ("valid_batches", valid_batches), ("valid_batch_size", valid_batch_size),
                             ("chunk", chunk), ("hidden", hidden), ("hyper_layers", hyper_layers),
                             ("steps", steps), ("channels", channels), ("depth", depth)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"smash: {label} must be a positive integer, got {value!r}")
        if not learning_rate > 0 or weight_decay < 0 or grad_clip < 0:
            raise ConfigError("smash: learning_rate must be > 0, weight_decay and grad_clip >= 0")
        if rank_by not in ("accuracy", "loss"):
            raise ConfigError(f"smash: rank_by must be 'accuracy' or 'loss', got {rank_by!r}")
        self.epochs, self.steps, self.batch_size = epochs, steps, batch_size
        self.learning_rate, self.weight_decay, self.grad_clip = float(learning_rate), float(weight_decay), grad_clip
        self.num_candidates, self.valid_batches, self.valid_batch_size = num_candidates, valid_batches, valid_batch_size
        self.channels, self.depth = channels, depth
        self.chunk, self.hidden, self.hyper_layers = chunk, hidden, hyper_layers
        self.rank_by = rank_by
        self.cell_context = bool(cell_context)
        self.reference_table, self.reference_column = reference_table, reference_column

    def options(self) -> JSONDict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def _scale_for(self, space: Any) -> None:
        """The preset's values for this space, for every option the user did not give."""
        for name, value in SPACE_SCALES.get((self.scale, getattr(space, "name", "")), {}).items():
            if name not in self._given:
                setattr(self, name, value)

    # ---- the method --------------------------------------------------------------------------------------
    def search(self, space: Any, dataset: Dataset, *, seed: int, device: torch.device,
               progress: ProgressFn) -> OneShotResult:
        if dataset.spec.task != CLASSIFICATION:
            raise ConfigError(f"smash: needs an image classification dataset, got task {dataset.spec.task!r}")
        self._scale_for(space)
        reference = read_reference(self.reference_table, self.reference_column) if self.reference_table else None
        start = time.perf_counter()
        reset_peak_memory(device)
        torch.manual_seed(seed)
        net = SMASHNetwork(space, dataset.spec, channels=self.channels, depth=self.depth, chunk=self.chunk,
                           hidden=self.hidden, hyper_layers=self.hyper_layers,
                           cell_context=self.cell_context).to(device)
        train = _tensors(dataset.train.x, dataset.train.y, device)
        chosen = self.scoring_rows(dataset, seed)
        valid = _tensors(dataset.valid.x[chosen], dataset.valid.y[chosen], device)
        history, steps_done = self._train(net, space, train, valid, seed, progress)
        train_seconds = time.perf_counter() - start
        ranked = self._rank(net, space, valid, np.random.default_rng([seed, 2]))
        metrics = {"valid_accuracy": ranked[0][1], "valid_loss": ranked[0][2],
                   "search_seconds": time.perf_counter() - start, "train_seconds": train_seconds,
                   "candidates": float(len(ranked)),
                   "candidates_mean_accuracy": float(np.mean([acc for _, acc, _ in ranked])),
                   "hypernet_parameters": float(sum(p.numel() for p in net.hypernet.parameters())),
                   "peak_memory_mb": peak_memory_mb(device)}
        if reference is not None:
            metrics.update(_reference_metrics(space, ranked, reference, self.rank_by))
        state: JSONDict = {"options": self.options(), "train_steps": steps_done, "history": history,
                           "encoding_channels": net.encoder.channels, "chunk": net.chunk,
                           "best": space.to_json(ranked[0][0])}
        scored = [(arch, acc if self.rank_by == "accuracy" else loss) for arch, acc, loss in ranked]
        return OneShotResult(ranked[0][0], metrics, scored, state)

    def scoring_rows(self, dataset: Dataset, seed: int) -> np.ndarray:
        """The validation rows every candidate is scored on, in scoring order.

        Stratified and not sorted: scoring normalises by each batch's statistics, and a batch of one class
        (from a class-sorted dataset) would lose exactly the signal being scored.
        """
        rows = self.valid_batches * self.valid_batch_size
        return stratified_order(dataset.valid.y, len(dataset.valid), seed)[:rows]

    def _train(self, net: SMASHNetwork, space: Any, train: _Data, valid: _Data, seed: int,
               progress: ProgressFn) -> tuple[list[dict[str, float]], int]:
        """Hypernet and skeleton trained together, a random architecture per step; progress once an epoch."""
        per_epoch = self.steps or max(1, math.ceil(len(train.y) / self.batch_size))
        total = per_epoch * self.epochs
        params = [p for p in net.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=self.learning_rate, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
        arch_rng = np.random.default_rng([seed, 0])
        probe_rng = np.random.default_rng([seed, 1])
        order = torch.Generator().manual_seed(seed)
        history: list[dict[str, float]] = []
        step = 0
        for epoch in range(1, self.epochs + 1):
            net.train()
            loss_sum = 0.0
            for index in _batches(len(train.y), self.batch_size, per_epoch, order):
                idx = index.to(train.y.device)
                x = _cpu_layout(train.x[idx])
                loss = self.train_step(net, optimizer, space.sample(arch_rng), x, train.y[idx])
                scheduler.step()
                step += 1
                loss_sum += loss
            accuracy, _ = score(net, space.sample(probe_rng), valid, self.valid_batch_size)
            row = {"train_loss": loss_sum / per_epoch, "valid_accuracy": accuracy}
            history.append(row)
            progress(epoch, row)
        return history, step

    def train_step(self, net: SMASHNetwork, optimizer: torch.optim.Optimizer, arch: Architecture,
                   x: torch.Tensor, y: torch.Tensor) -> float:
        """One step on one architecture: generate its weights, classify the batch, update hypernet and skeleton."""
        logits = net(x, arch)
        loss = F.cross_entropy(logits, y)
        if not torch.isfinite(loss):
            raise RuntimeError(f"smash: non-finite training loss for {arch.tokens}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            nn.utils.clip_grad_norm_(net.parameters(), self.grad_clip)
        optimizer.step()
        return float(loss.detach())

    def _rank(self, net: SMASHNetwork, space: Any, valid: _Data,
              rng: np.random.Generator) -> list[tuple[Architecture, float, float]]:
        """(arch, accuracy, loss) for every candidate, best first: by accuracy (ties: lower loss) or by loss
        (ties: higher accuracy), then draw order."""
        scored = [(arch, *score(net, arch, valid, self.valid_batch_size))
                  for arch in candidates(space, self.num_candidates, rng)]
        if self.rank_by == "accuracy":
            order = sorted(range(len(scored)), key=lambda i: (-scored[i][1], scored[i][2], i))
        else:
            order = sorted(range(len(scored)), key=lambda i: (scored[i][2], -scored[i][1], i))
        return [scored[i] for i in order]


def candidates(space: Any, count: int, rng: np.random.Generator) -> list[Architecture]:
    """Every distinct architecture when the space has at most `count` token sequences, else `count` distinct draws."""
    every = space.enumerate(count) if hasattr(space, "enumerate") else None
    if every is not None:
        return list(every)
    seen: set[str] = set()
    out: list[Architecture] = []
    for _ in range(50 * count):
        arch = space.sample(rng)
        key = space.key(arch)
        if key not in seen:
            seen.add(key)
            out.append(arch)
            if len(out) == count:
                break
    return out


@torch.no_grad()
def score(net: SMASHNetwork, arch: Architecture, valid: _Data, batch_size: int) -> tuple[float, float]:
    """(accuracy, mean loss) of `arch` with generated weights on the fixed validation rows."""
    plan = net.encoder.plan(arch)
    weights = net.generate(plan)
    correct, loss = 0.0, 0.0
    for lo in range(0, len(valid.y), batch_size):
        x, y = valid.x[lo:lo + batch_size], valid.y[lo:lo + batch_size]
        logits = net.run(x, plan, weights)
        correct += float((logits.argmax(dim=1) == y).sum())
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
    n = max(1, len(valid.y))
    return correct / n, loss / n


def _tensors(x: np.ndarray, y: np.ndarray, device: torch.device) -> _Data:
    """Device tensors; pinned and copied asynchronously only on CUDA."""
    xt = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
    if device.type == "cuda":
        return _Data(xt.pin_memory().to(device, non_blocking=True), yt.pin_memory().to(device, non_blocking=True))
    return _Data(_cpu_layout(xt), yt)


def _cpu_layout(x: torch.Tensor) -> torch.Tensor:
    """Channels-last image batches on the CPU: 1.4x (nb201) to 2.5x (darts) faster scoring, measured here."""
    if x.device.type == "cpu" and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _batches(rows: int, batch_size: int, count: int, generator: torch.Generator) -> list[torch.Tensor]:
    """`count` batches of shuffled row indices, reshuffled whenever the split runs out."""
    out: list[torch.Tensor] = []
    perm = torch.randperm(rows, generator=generator)
    pos = 0
    for _ in range(count):
        if pos + batch_size > rows and pos > 0:
            perm, pos = torch.randperm(rows, generator=generator), 0
        out.append(perm[pos:pos + batch_size])
        pos += batch_size
    return out


def _reference_metrics(space: Any, ranked: list[tuple[Architecture, float, float]],
                       reference: dict[str, float], rank_by: str = "accuracy") -> dict[str, float]:
    """How the generated-weight scores agree with a benchmark table (nb201 cell strings).

    `rank_correlation` is for the score the ranking used; `rank_correlation_accuracy` and
    `rank_correlation_loss` (loss negated, so positive means agreement) are both always given, and so
    are `reference_top_accuracy` and `reference_top_loss`: the table's value for the cell each score
    would pick (so one search shows what either `rank_by` would have chosen).
    """
    if not hasattr(space, "to_string"):
        raise ConfigError("smash: reference_table needs a space with cell strings (nb201)")
    rows = [(acc, -loss, reference[s]) for arch, acc, loss in ranked if (s := space.to_string(arch)) in reference]
    out: dict[str, float] = {"reference_matched": float(len(rows))}
    if not rows:
        return out
    best = space.to_string(ranked[0][0])
    if best in reference:
        out["reference_accuracy"] = reference[best]
    table = [r for _, _, r in rows]
    out["reference_best_candidate"] = max(table)
    for name, key in (("accuracy", lambda r: (-r[1], r[2])), ("loss", lambda r: (r[2], -r[1]))):
        top = space.to_string(min(ranked, key=key)[0])  # min is stable: ties keep the ranking's order
        if top in reference:
            out[f"reference_top_{name}"] = reference[top]
    for name, column in (("accuracy", 0), ("loss", 1)):
        rho = spearman([row[column] for row in rows], table)
        if rho is not None:
            out[f"rank_correlation_{name}"] = rho
            if name == rank_by:
                out["rank_correlation"] = rho
    return out
