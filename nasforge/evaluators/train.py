"""Train an architecture from scratch: the evaluator of NAS-RL, MetaQNN, NASNet and Model Search.

Data stays in tensors on the training device (no DataLoader: these models are small and the
per-batch overhead would dominate); batches are gathered with a seeded permutation, so the
same trial seed gives the same metrics on the CPU.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
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
from nasforge.data.base import CLASSIFICATION, Dataset, DataSpec, Split
from nasforge.evaluators.metrics import accuracy, forward_batched, r2, rmse

CHECKPOINT_NAME = "model.pt"
CHECKPOINT_FORMAT = 1
# Spaces without `training_hparams(arch)` (everything but dnn) train with these.
DEFAULT_TRAINING: JSONDict = {"optimizer": "adam", "learning_rate": 1e-3, "lr_decay": 1.0, "grad_clip": None}
# Per-epoch metrics early stopping may follow, with whether higher is better.
_STOP_METRICS = {
    CLASSIFICATION: {"valid_accuracy": True, "valid_loss": False},
    "regression": {"valid_rmse": False, "valid_r2": True, "valid_loss": False},
}
_DEFAULT_STOP = {CLASSIFICATION: "valid_accuracy", "regression": "valid_rmse"}


def resolve_device(device: str) -> torch.device:
    """'auto' means CUDA when present; anything else is passed to torch as is."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


def make_optimizer(params: list[nn.Parameter], hp: JSONDict) -> torch.optim.Optimizer:
    name, lr = str(hp["optimizer"]), float(hp["learning_rate"])
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    raise ConfigError(f"unknown optimizer {name!r}; choose one of: adam, adamw, sgd, rmsprop")


@dataclass
class _Tensors:
    """One split on the device: `y` is what the loss sees (standardized for regression), `y_raw` the truth."""

    x: torch.Tensor
    y: torch.Tensor
    y_raw: np.ndarray


@dataclass
class _Prepared:
    task: str
    train: _Tensors
    valid: _Tensors
    test: _Tensors | None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None


class TrainEvaluator:
    """Trains each architecture from scratch with early stopping on a validation metric."""

    def __init__(self, data: JSONDict | None = None, epochs: int = 10, steps: int | None = None,
                 batch_size: int = 128, patience: int | None = 3, device: str = "cpu",
                 save_weights: bool = True, eval_batch_size: int = 4096) -> None:
        if int(epochs) < 1 or int(batch_size) < 1 or int(eval_batch_size) < 1:
            raise ConfigError("train evaluator: epochs, batch_size and eval_batch_size must be >= 1")
        if steps is not None and int(steps) < 1:
            raise ConfigError(f"train evaluator: steps must be >= 1, got {steps}")
        if patience is not None and int(patience) < 1:
            raise ConfigError(f"train evaluator: patience must be >= 1 (or null to disable), got {patience}")
        self.data = data
        self.epochs = int(epochs)
        self.steps = int(steps) if steps is not None else None
        self.batch_size = int(batch_size)
        self.patience = int(patience) if patience is not None else None
        self.device = device
        self.save_weights = bool(save_weights)
        self.eval_batch_size = int(eval_batch_size)
        self._dataset: Dataset | None = None
        self._prepared: dict[str, _Prepared] = {}

    @classmethod
    def from_dataset(cls, dataset: Dataset, **options: Any) -> TrainEvaluator:
        """An evaluator over an in-memory dataset (tests, notebooks); workers cannot rebuild it from config."""
        evaluator = cls(**options)
        evaluator._dataset = dataset
        return evaluator

    def dataset(self) -> Dataset:
        """Loaded once per evaluator (and so once per worker process, which caches evaluators)."""
        if self._dataset is None:
            if self.data is None:
                raise ConfigError("train evaluator: no 'data' configured")
            from nasforge.data.loader import load_dataset

            self._dataset = load_dataset(self.data)
        return self._dataset

    # ---- the trial ------------------------------------------------------------------
    def evaluate(self, arch: Architecture, spec: TrialSpec, reporter: Reporter) -> Result:
        start = time.perf_counter()
        dataset = self.dataset()
        device = resolve_device(self.device)
        data = self._prepare(dataset, device)
        space = registry.create("space", spec.space, **spec.space_config)
        seed_everything(spec.seed)
        net = space.build(arch, dataset.spec)
        model = net if data.task == CLASSIFICATION else TargetScale(net, data.mean, data.std)
        model.to(device)
        params = int(sum(p.numel() for p in net.parameters()))
        hp = space.training_hparams(arch) if hasattr(space, "training_hparams") else DEFAULT_TRAINING

        epochs, steps = self._budget(spec.budget or {})
        stop_name = spec.objective if spec.objective in _STOP_METRICS[data.task] else _DEFAULT_STOP[data.task]
        maximize = _STOP_METRICS[data.task][stop_name]

        n = len(data.train.y)
        batches = [(s, min(s + self.batch_size, n)) for s in range(0, n, self.batch_size)]
        if len(batches) > 1 and batches[-1][1] - batches[-1][0] == 1:
            batches.pop()  # a batch of one breaks batch norm; the sample is seen in other epochs' shuffles
        total_steps = steps if steps is not None else epochs * len(batches)
        max_epochs = math.ceil(total_steps / len(batches))

        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(trainable, hp)
        decay = float(hp.get("lr_decay") or 1.0)
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, decay) if decay != 1.0 else None
        clip = hp.get("grad_clip")
        criterion = F.cross_entropy if data.task == CLASSIFICATION else F.mse_loss
        generator = torch.Generator().manual_seed(spec.seed)
        x, y = data.train.x, data.train.y

        curve: list[dict[str, float]] = []
        # ranked by (objective, -valid_loss): on small validation sets accuracy ties often, and the loss
        # then tells a better epoch from a worse one instead of stopping early on a plateau
        best_rank: tuple[float, float] = (-math.inf, -math.inf)
        best_row: dict[str, float] | None = None
        best_state: dict[str, torch.Tensor] | None = None
        train_start = time.perf_counter()
        bad_epochs = step = 0
        for epoch in range(1, max_epochs + 1):
            model.train()
            perm = torch.randperm(n, generator=generator).to(device)
            loss_sum = torch.zeros((), device=device)
            seen = 0
            lr = float(optimizer.param_groups[0]["lr"])
            for s, e in batches:
                if step >= total_steps:
                    break
                idx = perm[s:e]
                loss = criterion(net(x[idx]), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if clip:
                    nn.utils.clip_grad_norm_(trainable, float(clip))
                optimizer.step()
                loss_sum += loss.detach() * (e - s)  # summed on the device: one sync per epoch, not per step
                seen += e - s
                step += 1
            train_loss = float(loss_sum) / max(seen, 1)
            if not math.isfinite(train_loss):
                return Result(TrialState.FAILED, error=f"non-finite loss at epoch {epoch}", params=params,
                              duration=time.perf_counter() - start, curve=curve)
            if scheduler is not None:
                scheduler.step()
            row = {"epoch": float(epoch), "train_loss": train_loss, **self._metrics(model, data, data.valid, "valid"),
                   "lr": lr, "steps": float(step), "time": time.perf_counter() - train_start}
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
            if step >= total_steps:
                break

        if best_state is not None:
            model.load_state_dict(best_state)
        chosen = best_row if best_row is not None else curve[-1]
        metrics = {k: float(v) for k, v in chosen.items() if k.startswith("valid_")}
        metrics.update(train_loss=chosen["train_loss"], best_epoch=chosen["epoch"], epochs=float(len(curve)),
                       steps=float(step))
        if data.test is not None:
            metrics.update(self._metrics(model, data, data.test, "test"))
        metrics["train_time"] = time.perf_counter() - train_start
        checkpoint = None
        if spec.workdir and self.save_weights:
            checkpoint = str(self._save(model, dataset, data, spec, metrics))
        return Result(TrialState.COMPLETE, metrics=metrics, params=params, duration=time.perf_counter() - start,
                      checkpoint=checkpoint, curve=curve)

    # ---- helpers -----------------------------------------------------------------------
    def _budget(self, budget: JSONDict) -> tuple[int, int | None]:
        """A trial's budget (from a multi-fidelity strategy) overrides the evaluator's own."""
        if budget.get("steps") is not None:
            return self.epochs, max(1, int(budget["steps"]))
        if budget.get("epochs") is not None:
            return max(1, int(budget["epochs"])), None
        return self.epochs, self.steps

    def _prepare(self, dataset: Dataset, device: torch.device) -> _Prepared:
        key = str(device)
        if key not in self._prepared:
            task = dataset.spec.task
            if task == CLASSIFICATION:
                splits = [_class_tensors(s, device) if s is not None and len(s) else None
                          for s in (dataset.train, dataset.valid, dataset.test)]
                mean = std = None
            else:
                y_train = np.asarray(dataset.train.y, dtype=np.float64).reshape(len(dataset.train), -1)
                mean, std = y_train.mean(axis=0), y_train.std(axis=0)
                std = np.where(std > 1e-12, std, 1.0)
                splits = [_value_tensors(s, device, mean, std) if s is not None and len(s) else None
                          for s in (dataset.train, dataset.valid, dataset.test)]
            train, valid, test = splits
            if train is None or valid is None:
                raise ConfigError("train evaluator: the dataset needs non-empty train and validation splits")
            self._prepared[key] = _Prepared(task, train, valid, test, mean, std)
        return self._prepared[key]

    def _metrics(self, model: nn.Module, data: _Prepared, split: _Tensors, prefix: str) -> dict[str, float]:
        out = forward_batched(model, split.x, self.eval_batch_size)
        if data.task == CLASSIFICATION:
            loss = float(F.cross_entropy(out, split.y)) if len(split.y) else math.nan
            return {f"{prefix}_accuracy": accuracy(split.y_raw, out.argmax(dim=1).cpu().numpy()),
                    f"{prefix}_loss": loss}
        pred = out.double().cpu().numpy()
        assert data.std is not None
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


def _class_tensors(split: Split, device: torch.device) -> _Tensors:
    y = np.asarray(split.y, dtype=np.int64).reshape(-1)
    return _Tensors(torch.as_tensor(np.asarray(split.x, dtype=np.float32), device=device),
                    torch.as_tensor(y, device=device), y)


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
                         feature_names=tuple(spec.get("feature_names", ())))
    space = registry.create("space", payload["space"], **payload["space_config"])
    net = space.build(space.from_json(payload["arch"]), data_spec)
    scale = payload.get("target_scale")
    model = net if scale is None else TargetScale(net, scale["mean"], scale["std"])
    model.load_state_dict(payload["state_dict"])
    model.to(resolve_device(device))
    model.eval()
    return model, payload
