"""SMASH (Brock et al., 2018): one hypernetwork writes the cell convolutions of any architecture.

The network skeleton of a space (stem, reductions, classifier, the cells' fixed pre-processing)
keeps ordinary trained weights; the ops inside the cells store none. Their convolutions are
generated for each architecture by a hypernetwork from an encoding of that architecture, so one
training run (a random architecture per step) gives weights for every architecture, and many
architectures can be ranked by their validation accuracy with generated weights.

The skeletons are in `smash_skeletons.py`, the encoding and the hypernetwork in `smash_hypernet.py`;
this module is the search (training, ranking candidates, the `scale` presets).
"""

from __future__ import annotations

import csv
import math
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture, JSONDict
from nasforge.data.base import CLASSIFICATION, Dataset, stratified_order
from nasforge.oneshot.base import OneShotResult, ProgressFn
from nasforge.oneshot.smash_hypernet import SMASHNetwork


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
