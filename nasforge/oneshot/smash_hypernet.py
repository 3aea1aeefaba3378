"""SMASH's hypernetwork: an architecture's memory-bank encoding in, its cell ops' convolution weights out.

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

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture
from nasforge.data.base import DataSpec
from nasforge.models.ops import make_op
from nasforge.oneshot.smash_skeletons import OpSlot, Skeleton, make_skeleton, use_batch_statistics

Weights = list[dict[str, torch.Tensor]]


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
