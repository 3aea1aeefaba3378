"""Train an architecture from scratch: the evaluator of NAS-RL, MetaQNN, NASNet and Model Search.

Data stays in tensors on the training device (no DataLoader: these models are small and the
per-batch overhead would dominate); batches are gathered with a seeded permutation, so the
same trial seed gives the same metrics on the CPU. Image batches may be augmented on the fly
(`nasforge.data.augment`); language models walk their token streams in truncated-BPTT windows,
carrying the recurrent state between windows (detached) and reporting perplexity.

Multi-fidelity budgets (from a strategy, per trial) are `epochs`, `steps` and `data_fraction`: a
seeded, stratified subset of the training split, nested across fractions (a smaller fraction sees
a part of what a larger one sees; a language model gets the start of its stream).

Split by job: `train_options` (the options, checked), `train_data` (the data as device tensors), `steps`
(optimizers, losses, epochs), `checkpoint` (saving and loading a trained model), `devices` (device and
precision). Their public names are importable from here as before.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from nasforge.core import registry
from nasforge.core.errors import ConfigError
from nasforge.core.protocols import Reporter
from nasforge.core.seeding import seed_everything
from nasforge.core.types import Architecture, Result, TrialSpec, TrialState
from nasforge.data.base import CLASSIFICATION, LANGUAGE_MODEL, REGRESSION, Dataset, DataSpec
from nasforge.data.text import bptt_windows
from nasforge.evaluators.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from nasforge.evaluators.devices import (
    CHANNELS_LAST_ON_CPU,
    PRECISIONS,
    autocast,
    native_bf16,
    resolve_device,
    resolve_precision,
)
from nasforge.evaluators.metrics import accuracy, forward_batched, model_flops, perplexity, r2, rmse
from nasforge.evaluators.steps import (
    LM_EVAL_BATCH,
    TrainingSteps,
    _Run,
    _warm_up_torch,
    detach_state,
    lm_forward,
    lm_loss,
    make_optimizer,
    task_loss,
    training_members,
)
from nasforge.evaluators.train_data import TargetScale, TrainData, _Prepared, _Tensors, with_validation_in_training
from nasforge.evaluators.train_options import DEFAULT_TRAINING, HPARAM_KEYS, OPTIMIZERS, SCHEDULES, TrainOptions
from nasforge.models.tricks import FinalTraining

__all__ = ["CHANNELS_LAST_ON_CPU", "CHECKPOINT_FORMAT", "CHECKPOINT_NAME", "DEFAULT_TRAINING", "HPARAM_KEYS",
           "LM_EVAL_BATCH", "OPTIMIZERS", "PRECISIONS", "SCHEDULES", "TargetScale", "TrainEvaluator", "_Prepared",
           "_Run", "_Tensors", "autocast", "detach_state", "lm_forward", "lm_loss", "load_checkpoint",
           "make_optimizer", "native_bf16", "resolve_device", "resolve_precision", "task_loss", "training_members"]

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


class TrainEvaluator(TrainOptions, TrainData, TrainingSteps):
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
    `refit` (false; `nasforge train --refit`) trains on the training and validation splits together and keeps
    the last epoch: on a small set the held-out fifth is data the final model needs. The validation split is
    then seen, so no `valid_*` metric is stored and the trial has no score (it never ranks as a study's best);
    the test split stays unseen. Needs `patience` null.
    """

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
        if self.refit:
            data = with_validation_in_training(data)
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
            if self.refit:  # the validation split is trained on: it cannot choose an epoch, the last one is kept
                best_row = row
            elif math.isfinite(rank[0]) and rank > best_rank:
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
        metrics = {} if self.refit else {k: float(v) for k, v in chosen.items() if k.startswith("valid_")}
        if self.refit:
            metrics["refit"] = 1.0
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
            checkpoint = str(save_checkpoint(model, dataset, data, spec, metrics))
        return Result(TrialState.COMPLETE, metrics=metrics, params=params, duration=time.perf_counter() - start,
                      checkpoint=checkpoint, curve=curve)

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
