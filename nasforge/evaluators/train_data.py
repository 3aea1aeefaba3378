"""The train evaluator's data on the device: splits as tensors, cached per (device, data fraction), with
seeded, stratified and nested subsets for the `data_fraction` budget, and standardized regression targets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from nasforge.core.errors import ConfigError
from nasforge.data.base import CLASSIFICATION, LANGUAGE_MODEL, Dataset, Split, stratified_subset


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


class TrainData:
    """The device tensors of a dataset; mixed into the train evaluator, which sets the cache and `data_seed`."""

    _prepared: dict[tuple[str, float], _Prepared]
    data_seed: int

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

def _value_tensors(split: Split, device: torch.device, mean: np.ndarray, std: np.ndarray) -> _Tensors:
    """Regression targets as (n, outputs): standardized for the loss, raw for the metrics."""
    y = np.asarray(split.y, dtype=np.float64).reshape(len(split), -1)
    return _Tensors(torch.as_tensor(np.asarray(split.x, dtype=np.float32), device=device),
                    torch.as_tensor(((y - mean) / std).astype(np.float32), device=device), y)


def with_validation_in_training(data: _Prepared) -> _Prepared:
    """`data` with the validation rows appended to the training ones (a refit's training data); the validation
    split stays as it is, for the per-epoch curve only."""
    raw = (np.concatenate([data.train.y_raw, data.valid.y_raw]) if data.train.y_raw is not None
           and data.valid.y_raw is not None else None)
    train = _Tensors(torch.cat([data.train.x, data.valid.x]), torch.cat([data.train.y, data.valid.y]), raw)
    return dataclasses.replace(data, train=train)
