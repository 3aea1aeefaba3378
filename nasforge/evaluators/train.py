"""Train an architecture from scratch: the evaluator of NAS-RL, MetaQNN, NASNet and Model Search.

Data stays in tensors on the training device (no DataLoader: these models are small and the
per-batch overhead would dominate); batches are gathered with a seeded permutation, so the
same trial seed gives the same metrics on the CPU. Image batches may be augmented on the fly
(`nasforge.data.augment`); language models walk their token streams in truncated-BPTT windows,
carrying the recurrent state between windows (detached) and reporting perplexity.

Multi-fidelity budgets (from a strategy, per trial) are `epochs`, `steps` and `data_fraction`: a
seeded, stratified subset of the training split, nested across fractions (a smaller fraction sees
a part of what a larger one sees; a language model gets the start of its stream).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasforge.core import registry
from nasforge.core.errors import ConfigError
from nasforge.core.protocols import Reporter
from nasforge.core.seeding import seed_everything
from nasforge.core.types import Architecture, JSONDict, Result, TrialSpec, TrialState
from nasforge.data.augment import Augment
from nasforge.data.base import (
    CLASSIFICATION,
    LANGUAGE_MODEL,
    PAD_LABEL,
    REGRESSION,
    Dataset,
    DataSpec,
    Split,
    stratified_subset,
)
from nasforge.data.text import batchify, bptt_windows
from nasforge.evaluators.metrics import accuracy, forward_batched, model_flops, perplexity, r2, rmse
from nasforge.models.tricks import FinalTraining

CHECKPOINT_NAME = "model.pt"
CHECKPOINT_FORMAT = 1
# Spaces without `training_hparams(arch)` (everything but dnn) train with these, unless the evaluator's
# options say otherwise; a space's own values win over both.
DEFAULT_TRAINING: JSONDict = {"optimizer": "adam", "learning_rate": 1e-3, "lr_decay": 1.0, "grad_clip": None}
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("cosine", "exponential")
EXPONENTIAL_DECAY = 0.97  # per epoch, for schedule="exponential" when nothing else gives lr_decay
LM_GRAD_CLIP = 0.25  # language models clip gradients by default (the ENAS / DARTS PTB setting)
# Parallel streams when scoring a language model: 64 scores 3x faster than the papers' 10 on a CPU and moves
# perplexity by well under 1%; give eval_batch_size=10 for numbers comparable to published ones.
LM_EVAL_BATCH = 64
# Per-epoch metrics early stopping may follow, with whether higher is better.
_STOP_METRICS = {
    CLASSIFICATION: {"valid_accuracy": True, "valid_loss": False},
    REGRESSION: {"valid_rmse": False, "valid_r2": True, "valid_loss": False},
    LANGUAGE_MODEL: {"valid_perplexity": False, "valid_loss": False},
}
_DEFAULT_STOP = {CLASSIFICATION: "valid_accuracy", REGRESSION: "valid_rmse", LANGUAGE_MODEL: "valid_perplexity"}
# Scoring batches when `eval_batch_size` is not given: big for vectors (one matrix product), small for
# images on the CPU, where a conv net scores 128 images at a time 1.5-2.8x faster than 4096 (cache).
EVAL_BATCH = 4096
IMAGE_EVAL_BATCH_CPU = 128
# Channels-last image batches on the CPU: 1.4-2.3x faster training steps for the nb201, darts and
# enas_macro networks and 1.1-1.5x for plain CNNs on a 2-core CPU (bench/results/train_speed.md); only
# tiny networks of a few ms per step lose (up to 25%), to the layout conversions.
CHANNELS_LAST_ON_CPU = True
# "bf16": training forward passes and losses under bfloat16 autocast (weights, gradients, optimizer state
# and all scoring stay float32): 1.4-1.6x faster steps than float32 on a CPU with AVX512-BF16
# (bench/results/train_speed.md). "auto" (the default) picks it where the hardware computes bfloat16
# natively (AVX512-BF16 or AMX CPUs, GPUs with bf16), else float32 (emulated bf16 would be slower).
PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(device: str) -> torch.device:
    """'auto' means CUDA when present; anything else is passed to torch as is, once checked to exist here
    (a ConfigError naming it, instead of every trial failing inside torch)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"--device {device!r} is not a device; use cpu, cuda, cuda:N or auto") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available on this machine "
                              f"(torch {torch.__version__}); use --device cpu, or auto to take a GPU when there is one")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device {device}: nasforge trains on cpu, cuda or mps")
    return resolved


class TargetScale(nn.Module):
    """A regressor trained on standardized targets, answering in the data's units.

    Training uses `.net` directly against standardized targets; evaluation, checkpoints and
    exports use the wrapper, so nothing downstream needs to know the scaling.
    """

    def __init__(self, net: nn.Module, mean: Any, std: Any) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, dtype=np.float32)).reshape(1, -1))
        self.register_buffer("std", torch.as_tensor(np.asarray(std, dtype=np.float32)).reshape(1, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * self.std + self.mean


def _fused(params: list[nn.Parameter]) -> bool | None:
    """One kernel over all parameters instead of one per tensor (small CNNs have many small tensors).

    None (torch's own choice) where a parameter is elsewhere or of another kind."""
    if params and all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64)
                      and not p.is_sparse for p in params):
        return True
    return None


def make_optimizer(params: list[nn.Parameter], hp: JSONDict) -> torch.optim.Optimizer:
    """`hp`: optimizer, learning_rate, and optionally momentum (SGD, default 0.9), nesterov, weight_decay."""
    name, lr = str(hp["optimizer"]), float(hp["learning_rate"])
    decay = float(hp.get("weight_decay") or 0.0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=decay, fused=_fused(params))
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=decay, fused=_fused(params))
    if name == "sgd":
        momentum = float(hp.get("momentum", 0.9))
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=decay,
                               nesterov=bool(hp.get("nesterov", False)) and momentum > 0, fused=_fused(params))
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=decay)
    raise ConfigError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")


def _warm_up_torch() -> None:
    """One tiny optimizer step: torch imports its optimizers' machinery (torch._dynamo, over a second) on the
    first optimizer made in a process, which would otherwise be counted in a worker's first trial."""
    weight = nn.Parameter(torch.zeros(1))
    optimizer = make_optimizer([weight], {"optimizer": "adam", "learning_rate": 1e-3})
    (weight * 2.0).sum().backward()
    optimizer.step()


def detach_state(state: Any) -> Any:
    """A recurrent state (a tensor, or tuples/lists of them) cut from the graph of the last window."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, tuple | list):
        return type(state)(detach_state(s) for s in state)
    return state


def lm_forward(model: nn.Module, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
    """Logits (batch, T, vocab) and the next state.

    A model with `run(ids, state) -> (logits, state)` (nasforge.models.rnn.LanguageModel) or whose
    forward returns `(logits, state)` carries its state; one whose forward returns bare logits is stateless.
    """
    runner = getattr(model, "run", None)
    if not callable(runner):
        runner = (lambda ids, _: model(ids)) if state is None else model
    out = runner(x, state)
    if isinstance(out, tuple | list):
        return out[0], out[1] if len(out) > 1 else None
    return out, None


def _check_number(name: str, value: Any, low: float, high: float = math.inf, *, low_open: bool = False,
                  optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > high or (value <= low if low_open else value < low):
        bound = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
        raise ConfigError(f"train evaluator: {name} must be a number {bound}, got {value!r}")
    return float(value)


@dataclass
class _Tensors:
    """One split on the device: `y` is what the loss sees (standardized for regression), `y_raw` the truth."""

    x: torch.Tensor
    y: torch.Tensor
    y_raw: np.ndarray | None


@dataclass
class _Prepared:
    task: str
    train: _Tensors
    valid: _Tensors
    test: _Tensors | None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None


@dataclass
class _Run:
    """The moving parts of one trial's training loop."""

    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    trainable: list[nn.Parameter]
    clip: float | None
    total_steps: int
    step_scheduler: torch.optim.lr_scheduler.LRScheduler | None
    generator: torch.Generator
    augment_generator: torch.Generator
    channels_last: bool
    precision: str = "fp32"
    step: int = 0
    deadline: float | None = None  # time.time() at which training stops (a search's time budget)
    tricks: FinalTraining | None = None
    label_smoothing: float = 0.0

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline

    def precision_context(self) -> contextlib.AbstractContextManager[Any]:
        return autocast(self.model, self.precision)


class TrainEvaluator:
    """Trains each architecture from scratch with early stopping on a validation metric.

    Options beyond the budget ones (all JSON; None means "the space's choice, else the default"):
    `optimizer` (adam, adamw, sgd, rmsprop) and `lr` for spaces that do not search them, SGD's
    `momentum` (0.9) and `nesterov` (false), `weight_decay` (0), `schedule` (None: the space's
    per-epoch `lr_decay`; "cosine": per step to zero over the budget; "exponential": per epoch by
    `lr_decay`), `grad_clip` (None; 0.25 for language models), `augment` (image batches, e.g.
    `{"crop_padding": 4, "flip": true, "cutout": 16}`), `data_fraction` (1.0) with `data_seed` (0),
    `channels_last` (None: measured default for the device) and `compile` (false: torch.compile the
    training forward, which pays only for long trials). `precision` ("auto": bf16 where the hardware has
    native bfloat16, else fp32; "fp32"; "bf16": bfloat16 autocast for forward passes and losses, float32
    weights). `eval_batch_size` (None) defaults to 4096 rows,
    128 images on the CPU, or 64 parallel streams for a language model. `hparams` (None) holds training
    hyperparameters that win even over the space's own (final training's `--lr` on a space that searches it).
    `drop_path` (0: the largest scheduled drop-path probability, reached at the end of training) and
    `auxiliary_weight` (0: the weight of an auxiliary head's loss) are NASNet's and DARTS's final-training
    tricks for cell networks (`nasforge.models.tricks`); `nasforge train` switches them on for those spaces.
    """

    def __init__(self, data: JSONDict | None = None, epochs: int = 10, steps: int | None = None,
                 batch_size: int = 128, patience: int | None = 3, device: str = "cpu",
                 save_weights: bool = True, eval_batch_size: int | None = None, *, optimizer: str | None = None,
                 lr: float | None = None, momentum: float = 0.9, weight_decay: float = 0.0, nesterov: bool = False,
                 schedule: str | None = None, lr_decay: float | None = None, grad_clip: float | None = None,
                 augment: JSONDict | None = None, data_fraction: float = 1.0, data_seed: int = 0,
                 channels_last: bool | None = None, compile: bool = False, precision: str = "auto",
                 hparams: JSONDict | None = None, drop_path: float = 0.0, auxiliary_weight: float = 0.0) -> None:
        if int(epochs) < 1 or int(batch_size) < 1 or (eval_batch_size is not None and int(eval_batch_size) < 1):
            raise ConfigError("train evaluator: epochs, batch_size and eval_batch_size must be >= 1")
        if steps is not None and int(steps) < 1:
            raise ConfigError(f"train evaluator: steps must be >= 1, got {steps}")
        if patience is not None and int(patience) < 1:
            raise ConfigError(f"train evaluator: patience must be >= 1 (or null to disable), got {patience}")
        if optimizer is not None and optimizer not in OPTIMIZERS:
            raise ConfigError(f"train evaluator: optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
        if schedule is not None and schedule not in SCHEDULES:
            raise ConfigError(f"train evaluator: schedule must be one of {', '.join(SCHEDULES)} or null, "
                              f"got {schedule!r}")
        for name, flag in (("nesterov", nesterov), ("compile", compile), ("save_weights", save_weights)):
            if not isinstance(flag, bool):
                raise ConfigError(f"train evaluator: {name} must be true or false, got {flag!r}")
        if channels_last is not None and not isinstance(channels_last, bool):
            raise ConfigError(f"train evaluator: channels_last must be true, false or null, got {channels_last!r}")
        if precision not in PRECISIONS:
            raise ConfigError(f"train evaluator: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if isinstance(data_seed, bool) or not isinstance(data_seed, int) or data_seed < 0:
            raise ConfigError(f"train evaluator: data_seed must be a non-negative integer, got {data_seed!r}")
        self.data = data
        self.epochs = int(epochs)
        self.steps = int(steps) if steps is not None else None
        self.batch_size = int(batch_size)
        self.patience = int(patience) if patience is not None else None
        self.device = device
        self.save_weights = bool(save_weights)
        self.eval_batch_size = int(eval_batch_size) if eval_batch_size is not None else None
        self.optimizer = optimizer
        self.lr = _check_number("lr", lr, 0.0, low_open=True, optional=True)
        self.momentum = _check_number("momentum", momentum, 0.0, 1.0)
        self.weight_decay = _check_number("weight_decay", weight_decay, 0.0)
        if nesterov and not self.momentum:
            raise ConfigError("train evaluator: nesterov needs momentum > 0")
        self.nesterov = nesterov
        self.schedule = schedule
        self.lr_decay = _check_number("lr_decay", lr_decay, 0.0, 1.0, low_open=True, optional=True)
        if schedule == "exponential" and self.lr_decay is None:
            self.lr_decay = EXPONENTIAL_DECAY
        self.grad_clip = _check_number("grad_clip", grad_clip, 0.0, low_open=True, optional=True)
        self.augment = Augment.from_options(augment)
        self.data_fraction = self._check_fraction(data_fraction)
        self.data_seed = data_seed
        self.channels_last = channels_last
        self.compile = compile
        self.precision = precision
        self.hparams = _check_hparams(hparams)
        self.drop_path = _check_number("drop_path", drop_path, 0.0, 0.95)
        self.auxiliary_weight = _check_number("auxiliary_weight", auxiliary_weight, 0.0)
        self._dataset: Dataset | None = None
        self._prepared: dict[tuple[str, float], _Prepared] = {}

    @classmethod
    def from_dataset(cls, dataset: Dataset, **options: Any) -> TrainEvaluator:
        """An evaluator over an in-memory dataset (tests, notebooks); workers cannot rebuild it from config."""
        evaluator = cls(**options)
        evaluator._dataset = dataset
        return evaluator

    def cost_inputs(self, spec: TrialSpec) -> tuple[DataSpec, str]:
        """What a trial's model is built for and where it runs: its costs are measured there before training
        (nasforge.objectives.costs)."""
        return self.dataset().spec, self.device

    def dataset(self) -> Dataset:
        """Loaded once per evaluator (and so once per worker process, which caches evaluators)."""
        if self._dataset is None:
            if self.data is None:
                raise ConfigError("train evaluator: no 'data' configured")
            from nasforge.data.loader import load_dataset

            self._dataset = load_dataset(self.data)
        return self._dataset

    def prepare(self, spec: TrialSpec) -> bool:
        """Load the data and put the trial's share of it on the device before the trial starts, so that a
        trial's time is its training, not the loading its worker does once. True when it loaded anything."""
        loaded = self._dataset is None
        if loaded:
            _warm_up_torch()
        dataset = self.dataset()
        device = resolve_device(self.device)
        fraction = self._fraction_of(spec.budget or {})
        if (str(device), fraction) not in self._prepared:
            self._prepare(dataset, device, fraction)
            loaded = True
        return loaded

    def _fraction_of(self, budget: JSONDict) -> float:
        if budget.get("data_fraction") is not None:
            return self._check_fraction(budget["data_fraction"])
        return self.data_fraction

    # ---- the trial ------------------------------------------------------------------
    def evaluate(self, arch: Architecture, spec: TrialSpec, reporter: Reporter, space: Any = None) -> Result:
        """Train `arch` under the trial's budget; `space` (default: from the registry by `spec.space`)
        lets tests and notebooks use a space object that is not registered."""
        start = time.perf_counter()
        dataset = self.dataset()
        device = resolve_device(self.device)
        budget = spec.budget or {}
        fraction = self._fraction_of(budget)
        data = self._prepare(dataset, device, fraction)
        task = data.task
        images = task == CLASSIFICATION and len(dataset.spec.input_shape) == 3
        if self.augment is not None and not images:
            raise ConfigError(f"train evaluator: augment needs image data (C, H, W), got input shape "
                              f"{tuple(dataset.spec.input_shape)}")
        if space is None:
            space = registry.create("space", spec.space, **spec.space_config)
        seed_everything(spec.seed)
        net = space.build(arch, dataset.spec)
        model = TargetScale(net, data.mean, data.std) if task == REGRESSION else net
        model.to(device)
        fit_data = getattr(net, "fit_data", None)
        if callable(fit_data):  # data-dependent set-up, e.g. quantile bins of numeric embeddings
            fit_data(data.train.x)
        params = int(sum(p.numel() for p in net.parameters()))
        flops = model_flops(net, task, dataset.spec.input_shape)
        try:
            tricks = FinalTraining(net, self.drop_path or 0.0, self.auxiliary_weight or 0.0)
        except ValueError as exc:
            raise ConfigError(f"train evaluator: {exc}") from exc
        hp = self._hparams(space, arch, task)
        channels_last = bool(images and (self.channels_last if self.channels_last is not None
                                         else CHANNELS_LAST_ON_CPU or device.type == "cuda"))
        if channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

        epochs, steps = self._budget(budget)
        stop_name = spec.objective if spec.objective in _STOP_METRICS[task] else _DEFAULT_STOP[task]
        maximize = _STOP_METRICS[task][stop_name]
        if task == LANGUAGE_MODEL:
            if len(data.train.x) < self.batch_size:
                raise ConfigError(f"train evaluator: {len(data.train.x)} training tokens are too few for "
                                  f"batch_size {self.batch_size} parallel streams")
            per_epoch = len(bptt_windows(len(data.train.x) // self.batch_size, int(dataset.spec.input_shape[0])))
            batches: list[tuple[int, int]] = []
        else:
            n = len(data.train.y)
            batches = [(s, min(s + self.batch_size, n)) for s in range(0, n, self.batch_size)]
            if len(batches) > 1 and batches[-1][1] - batches[-1][0] == 1:
                batches.pop()  # a batch of one breaks batch norm; the sample is seen in other epochs' shuffles
            per_epoch = len(batches)
        total_steps = steps if steps is not None else epochs * per_epoch
        max_epochs = math.ceil(total_steps / per_epoch)

        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(trainable, hp)
        decay = float(hp.get("lr_decay") or 1.0)
        epoch_scheduler = step_scheduler = None
        if self.schedule == "cosine":
            step_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total_steps) / total_steps)))
        elif decay != 1.0:
            epoch_scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, decay)
        train_net: nn.Module = net
        if self.compile:
            train_net = torch.compile(net)  # type: ignore[assignment]
        run = _Run(model=model, net=train_net, optimizer=optimizer, trainable=trainable,
                   clip=float(hp["grad_clip"]) if hp.get("grad_clip") else None, total_steps=total_steps,
                   step_scheduler=step_scheduler, generator=torch.Generator().manual_seed(spec.seed),
                   augment_generator=torch.Generator().manual_seed(spec.seed + 1), channels_last=channels_last,
                   precision=resolve_precision(self.precision, device), deadline=spec.deadline, tricks=tricks,
                   label_smoothing=float(hp.get("label_smoothing") or 0.0))
        train_epoch: Callable[[_Run, _Prepared], tuple[float, int]]
        if task == LANGUAGE_MODEL:
            train_epoch = lambda r, d: self._lm_epoch(r, d, int(dataset.spec.input_shape[0]))  # noqa: E731
        else:
            train_epoch = lambda r, d: self._epoch(r, d, batches)  # noqa: E731

        curve: list[dict[str, float]] = []
        # ranked by (objective, -valid_loss): on small validation sets accuracy ties often, and the loss
        # then tells a better epoch from a worse one instead of stopping early on a plateau
        best_rank: tuple[float, float] = (-math.inf, -math.inf)
        best_row: dict[str, float] | None = None
        best_state: dict[str, torch.Tensor] | None = None
        train_start = time.perf_counter()
        bad_epochs = 0
        time_limited = False
        for epoch in range(1, max_epochs + 1):
            epoch_start = time.time()
            lr = float(optimizer.param_groups[0]["lr"])
            tricks.progress((epoch - 1) / max_epochs)
            loss_sum, seen = train_epoch(run, data)
            train_loss = loss_sum / max(seen, 1)
            if not math.isfinite(train_loss):
                return Result(TrialState.FAILED, error=f"nan: non-finite loss at epoch {epoch}",
                              params=params,
                              duration=time.perf_counter() - start, curve=curve)
            if epoch_scheduler is not None:
                epoch_scheduler.step()
            row = {"epoch": float(epoch), "train_loss": train_loss,
                   **self._metrics(model, data, data.valid, "valid", dataset.spec, channels_last),
                   "lr": lr, "steps": float(run.step), "time": time.perf_counter() - train_start}
            curve.append(row)
            reporter.report(epoch, row)
            rank = (row[stop_name] if maximize else -row[stop_name], -row["valid_loss"])
            if math.isfinite(rank[0]) and rank > best_rank:
                best_rank, best_row, bad_epochs = rank, row, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
                if self.patience is not None and bad_epochs >= self.patience:
                    break
            if run.step >= total_steps:
                break
            now = time.time()
            if run.deadline is not None and now + (now - epoch_start) > run.deadline:
                time_limited = True  # another epoch as long as this one would end past the search's deadline
                break

        if best_state is not None:
            model.load_state_dict(best_state)
        tricks.finish()
        chosen = best_row if best_row is not None else curve[-1]
        metrics = {k: float(v) for k, v in chosen.items() if k.startswith("valid_")}
        metrics.update(train_loss=chosen["train_loss"], best_epoch=chosen["epoch"], epochs=float(len(curve)),
                       steps=float(run.step))
        if data.test is not None:
            metrics.update(self._metrics(model, data, data.test, "test", dataset.spec, channels_last))
        metrics.update(train_time=time.perf_counter() - train_start, params=float(params), data_fraction=fraction)
        if time_limited or run.out_of_time():
            metrics["time_limited"] = 1.0
        if flops is not None:
            metrics["flops"] = flops
        checkpoint = None
        if spec.workdir and self.save_weights:
            if channels_last:
                model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
            checkpoint = str(self._save(model, dataset, data, spec, metrics))
        return Result(TrialState.COMPLETE, metrics=metrics, params=params, duration=time.perf_counter() - start,
                      checkpoint=checkpoint, curve=curve)

    # ---- training epochs ----------------------------------------------------------------
    def _epoch(self, run: _Run, data: _Prepared, batches: list[tuple[int, int]]) -> tuple[float, int]:
        """One shuffled pass over the (sub)set; returns (summed loss, examples seen)."""
        model, device = run.model, data.train.x.device
        model.train()
        x, y = data.train.x, data.train.y
        perm = torch.randperm(len(y), generator=run.generator).to(device)
        loss_sum = torch.zeros((), device=device)
        seen = 0
        for i, (s, e) in enumerate(batches):
            if run.step >= run.total_steps or (i % 16 == 15 and run.out_of_time()):
                break
            idx = perm[s:e]
            xb = x[idx]
            if self.augment is not None:
                xb = self.augment(xb, run.augment_generator)
            if run.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with run.precision_context():
                loss = self._batch_loss(run, data, xb, idx)
            self._step(run, loss)
            loss_sum += loss.detach() * (e - s)  # summed on the device: one sync per epoch, not per step
            seen += e - s
        return float(loss_sum), seen

    def _batch_loss(self, run: _Run, data: _Prepared, xb: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Loss of one (augmented) batch of training rows `idx`; distillation changes only this."""
        target = data.train.y[idx]
        loss = task_loss(run.net(xb), target, data.task, run.label_smoothing, training_members(run.model))
        if run.tricks is None:
            return loss
        criterion = F.cross_entropy if data.task == CLASSIFICATION else F.mse_loss
        return run.tricks.loss(loss, target, criterion)

    def _lm_epoch(self, run: _Run, data: _Prepared, bptt: int) -> tuple[float, int]:
        """One pass over the stream in BPTT windows, state carried (and detached) from window to window."""
        model, device = run.model, data.train.x.device
        model.train()
        x, y = batchify(data.train.x, self.batch_size), batchify(data.train.y, self.batch_size)
        loss_sum = torch.zeros((), device=device)
        seen = 0
        state: Any = None
        for s, e in bptt_windows(x.shape[1], bptt):
            if run.step >= run.total_steps:
                break
            target = y[:, s:e]
            with run.precision_context():
                logits, state = lm_forward(run.net, x[:, s:e], state)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
            self._step(run, loss)
            state = detach_state(state)
            loss_sum += loss.detach() * target.numel()
            seen += target.numel()
        return float(loss_sum), seen

    @staticmethod
    def _step(run: _Run, loss: torch.Tensor) -> None:
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if run.clip:
            nn.utils.clip_grad_norm_(run.trainable, run.clip)
        run.optimizer.step()
        if run.step_scheduler is not None:
            run.step_scheduler.step()
        run.step += 1

    # ---- helpers -----------------------------------------------------------------------
    def _hparams(self, space: Any, arch: Architecture, task: str) -> JSONDict:
        """Defaults < the evaluator's options < what the space searches (dnn: optimizer, lr, decay, clip)."""
        hp: JSONDict = dict(DEFAULT_TRAINING, momentum=self.momentum, weight_decay=self.weight_decay,
                            nesterov=self.nesterov)
        if task == LANGUAGE_MODEL:
            hp["grad_clip"] = LM_GRAD_CLIP
        for key, value in (("optimizer", self.optimizer), ("learning_rate", self.lr), ("lr_decay", self.lr_decay),
                           ("grad_clip", self.grad_clip)):
            if value is not None:
                hp[key] = value
        if hasattr(space, "training_hparams"):
            hp.update({k: v for k, v in space.training_hparams(arch).items() if v is not None})
        hp.update(self.hparams)
        return hp

    @staticmethod
    def _check_fraction(value: Any) -> float:
        fraction = _check_number("data_fraction", value, 0.0, 1.0, low_open=True)
        assert fraction is not None
        return fraction

    def _budget(self, budget: JSONDict) -> tuple[int, int | None]:
        """A trial's budget (from a multi-fidelity strategy) overrides the evaluator's own."""
        if budget.get("steps") is not None:
            return self.epochs, max(1, int(budget["steps"]))
        if budget.get("epochs") is not None:
            return max(1, int(budget["epochs"])), None
        return self.epochs, self.steps

    def _prepare(self, dataset: Dataset, device: torch.device, fraction: float = 1.0) -> _Prepared:
        """Device tensors per (device, data fraction); the subsets are views of the full set's tensors."""
        key = (str(device), fraction)
        if key in self._prepared:
            return self._prepared[key]
        if fraction < 1.0:
            full = self._prepare(dataset, device, 1.0)
            rows = len(full.train.y)
            count = max(2, round(fraction * rows))
            if full.task == LANGUAGE_MODEL:
                index = torch.arange(min(count, rows), device=device)
            else:
                labels = full.train.y_raw if full.task == CLASSIFICATION and full.train.y.dim() == 1 else None
                index = torch.as_tensor(stratified_subset(labels, rows, count, self.data_seed), device=device)
            raw = full.train.y_raw[index.cpu().numpy()] if full.train.y_raw is not None else None
            train = _Tensors(full.train.x[index], full.train.y[index], raw)
            prepared = dataclasses.replace(full, train=train)
            while len(self._prepared) > 3:  # the full set plus a few fidelities
                oldest = next(k for k in self._prepared if k[1] < 1.0)
                del self._prepared[oldest]
            self._prepared[key] = prepared
            return prepared
        task = dataset.spec.task
        mean = std = None
        splits: list[_Tensors | None]
        if task == CLASSIFICATION:
            splits = [_class_tensors(s, device) if s is not None and len(s) else None
                      for s in (dataset.train, dataset.valid, dataset.test)]
        elif task == LANGUAGE_MODEL:
            splits = [_token_tensors(s, device) if s is not None and len(s) else None
                      for s in (dataset.train, dataset.valid, dataset.test)]
        else:
            y_train = np.asarray(dataset.train.y, dtype=np.float64).reshape(len(dataset.train), -1)
            mean, std = y_train.mean(axis=0), y_train.std(axis=0)
            std = np.where(std > 1e-12, std, 1.0)
            splits = [_value_tensors(s, device, mean, std) if s is not None and len(s) else None
                      for s in (dataset.train, dataset.valid, dataset.test)]
        if splits[0] is None or splits[1] is None:
            raise ConfigError("train evaluator: the dataset needs non-empty train and validation splits")
        self._prepared[key] = _Prepared(task, splits[0], splits[1], splits[2], mean, std)
        return self._prepared[key]

    def _metrics(self, model: nn.Module, data: _Prepared, split: _Tensors, prefix: str,
                 spec: DataSpec | None = None, channels_last: bool = False) -> dict[str, float]:
        # scored in float32 whatever the training precision: stored metrics are what the saved weights give
        # `predict` and an exported model
        if data.task == LANGUAGE_MODEL:
            assert spec is not None
            loss = lm_loss(model, split.x, split.y, int(spec.input_shape[0]), self.eval_batch_size or LM_EVAL_BATCH)
            return {f"{prefix}_perplexity": perplexity(loss), f"{prefix}_loss": loss}
        images = split.x.dim() == 4
        size = self.eval_batch_size or (IMAGE_EVAL_BATCH_CPU if images and split.x.device.type == "cpu" else EVAL_BATCH)
        out = forward_batched(model, split.x, size, channels_last=channels_last)
        if data.task == CLASSIFICATION:
            assert split.y_raw is not None
            loss = float(task_loss(out, split.y, CLASSIFICATION)) if len(split.y) else math.nan
            return {f"{prefix}_accuracy": accuracy(split.y_raw, out.argmax(dim=-1).cpu().numpy()),
                    f"{prefix}_loss": loss}
        pred = out.double().cpu().numpy()
        assert data.std is not None and split.y_raw is not None
        loss = float(np.mean(((pred - split.y_raw) / data.std) ** 2))  # the training loss: standardized MSE
        return {f"{prefix}_rmse": rmse(split.y_raw, pred), f"{prefix}_r2": r2(split.y_raw, pred),
                f"{prefix}_loss": loss}

    def _save(self, model: nn.Module, dataset: Dataset, data: _Prepared, spec: TrialSpec,
              metrics: dict[str, float]) -> Path:
        path = Path(spec.workdir or ".") / CHECKPOINT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        preprocessor = dataset.preprocessor.to_json() if dataset.preprocessor is not None else None
        payload = {
            "format": CHECKPOINT_FORMAT,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "arch": spec.arch,
            "space": spec.space,
            "space_config": spec.space_config,
            "data_spec": _plain(dataclasses.asdict(dataset.spec)),
            "target_scale": (None if data.mean is None or data.std is None
                             else {"mean": data.mean.tolist(), "std": data.std.tolist()}),
            "preprocessor": _plain(preprocessor),
            "metrics": metrics,
            "trial": {"study": spec.study, "number": spec.number, "seed": spec.seed},
        }
        torch.save(payload, path)
        return path


HPARAM_KEYS = ("optimizer", "learning_rate", "lr_decay", "grad_clip", "momentum", "weight_decay", "nesterov",
               "label_smoothing")


def task_loss(out: torch.Tensor, y: torch.Tensor, task: str, label_smoothing: float = 0.0,
              members: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy (with label smoothing) or MSE. With `members` (batch, members, outputs), as
    nasforge.models.tabular's networks keep in training, each member's own loss, averaged."""
    if members is not None:
        out = members.reshape(-1, members.shape[-1])
        y = y.repeat_interleave(members.shape[1], dim=0)
    if task == CLASSIFICATION:
        if out.dim() == 3:  # one label per step: padded steps carry PAD_LABEL, torch's ignore_index
            out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1)
        return F.cross_entropy(out, y, label_smoothing=label_smoothing, ignore_index=PAD_LABEL)
    return F.mse_loss(out, y)


def training_members(model: nn.Module) -> torch.Tensor | None:
    """The member outputs a network kept from its last training forward (see task_loss), else None."""
    net = model.net if isinstance(model, TargetScale) else model
    members = getattr(net, "training_members", None)
    return members if isinstance(members, torch.Tensor) else None


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes in bfloat16 natively (emulated bf16 is slower than float32)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(bool(check()) for check in checks if callable(check))
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" made concrete for a device: "bf16" with native bfloat16, else "fp32"."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def autocast(model: nn.Module, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on the model's device for precision "bf16"; nothing for "fp32"."""
    if precision != "bf16":
        return contextlib.nullcontext()
    param = next(model.parameters(), None)
    device = param.device.type if param is not None else "cpu"
    return torch.autocast(device, dtype=torch.bfloat16)


def _check_hparams(value: Any) -> JSONDict:
    """`hparams` overrides: known keys only, so a typo fails before training rather than being ignored."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"train evaluator: hparams must be an object like {{'learning_rate': 0.01}}, got {value!r}")
    unknown = sorted(set(value) - set(HPARAM_KEYS))
    if unknown:
        raise ConfigError(f"train evaluator: unknown hparams {', '.join(unknown)}; allowed: {', '.join(HPARAM_KEYS)}")
    if value.get("optimizer") is not None and value["optimizer"] not in OPTIMIZERS:
        raise ConfigError(f"train evaluator: hparams optimizer must be one of {', '.join(OPTIMIZERS)}")
    if "learning_rate" in value:
        _check_number("learning_rate", value["learning_rate"], 0.0, low_open=True)
    return dict(value)


def _class_tensors(split: Split, device: torch.device) -> _Tensors:
    y = np.asarray(split.y, dtype=np.int64)
    if y.ndim != 2:  # (cases, steps) per-step labels stay two-dimensional
        y = y.reshape(-1)
    return _Tensors(torch.as_tensor(np.asarray(split.x, dtype=np.float32), device=device),
                    torch.as_tensor(y, device=device), y)


def _token_tensors(split: Split, device: torch.device) -> _Tensors:
    """A token stream: ids and next ids, both (n,) int64."""
    return _Tensors(torch.as_tensor(np.asarray(split.x, dtype=np.int64), device=device),
                    torch.as_tensor(np.asarray(split.y, dtype=np.int64), device=device), None)


def lm_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bptt: int, batch: int = LM_EVAL_BATCH) -> float:
    """Mean next-token cross-entropy (nats) over a stream, read as `batch` rows in windows with state carried."""
    rows = max(1, min(batch, len(x)))
    xs, ys = batchify(x, rows), batchify(y, rows)
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    state: Any = None
    with torch.inference_mode():
        for s, e in bptt_windows(xs.shape[1], bptt):
            logits, state = lm_forward(model, xs[:, s:e], state)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ys[:, s:e].reshape(-1),
                                     reduction="sum").double()
    return float(total) / max(1, ys.numel())


def _value_tensors(split: Split, device: torch.device, mean: np.ndarray, std: np.ndarray) -> _Tensors:
    """Regression targets as (n, outputs): standardized for the loss, raw for the metrics."""
    y = np.asarray(split.y, dtype=np.float64).reshape(len(split), -1)
    return _Tensors(torch.as_tensor(np.asarray(split.x, dtype=np.float32), device=device),
                    torch.as_tensor(((y - mean) / std).astype(np.float32), device=device), y)


def _plain(value: Any) -> Any:
    """Pure JSON types (NumPy arrays become lists), so checkpoints load with weights_only=True."""
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[nn.Module, JSONDict]:
    """Rebuild a trained model (space from the registry) in eval mode; regression models answer in data units."""
    payload = torch.load(Path(path), map_location=resolve_device(device), weights_only=True)
    spec = payload["data_spec"]
    data_spec = DataSpec(task=spec["task"], input_shape=tuple(spec["input_shape"]),
                         num_outputs=int(spec["num_outputs"]), class_names=tuple(spec.get("class_names", ())),
                         feature_names=tuple(spec.get("feature_names", ())),
                         feature_kinds=tuple(spec.get("feature_kinds", ())),
                         per_step=bool(spec.get("per_step", False)))
    space = registry.create("space", payload["space"], **payload["space_config"])
    net = space.build(space.from_json(payload["arch"]), data_spec)
    scale = payload.get("target_scale")
    model = net if scale is None else TargetScale(net, scale["mean"], scale["std"])
    model.load_state_dict(payload["state_dict"])
    model.to(resolve_device(device))
    model.eval()
    return model, payload
