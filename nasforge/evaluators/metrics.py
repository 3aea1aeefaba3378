"""Metric functions on NumPy arrays and batched prediction, shared by training, reports and `predict`."""

from __future__ import annotations

import numpy as np
import torch

from nasforge.data.base import CLASSIFICATION, REGRESSION


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction correct; `y_pred` is class indices or a (n, classes) score/probability matrix."""
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred)
    labels = y_pred.argmax(axis=1) if y_pred.ndim == 2 else y_pred.reshape(-1)
    if y_true.size == 0:
        return float("nan")
    return float(np.mean(labels == y_true))


def _as_2d(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return y.reshape(y.shape[0], -1)


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error over every target value."""
    diff = _as_2d(y_true) - _as_2d(y_pred)
    return float(np.sqrt(np.mean(diff * diff)))


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination, averaged over targets (as scikit-learn's default does)."""
    t, p = _as_2d(y_true), _as_2d(y_pred)
    ss_res = ((t - p) ** 2).sum(axis=0)
    ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    # a constant target: perfect if predicted exactly, else 0 (rather than -inf)
    scores = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0),
                      np.where(ss_res == 0, 1.0, 0.0))
    return float(scores.mean())


def model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def forward_batched(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Eval-mode outputs for `x` (already on the model's device) in big batches, without autograd."""
    model.eval()
    with torch.inference_mode():
        # max(n, 1): an empty input still goes through the model once, giving a (0, outputs) answer
        parts = [model(x[i:i + batch_size]) for i in range(0, max(x.shape[0], 1), batch_size)]
    return torch.cat(parts)


def predict_arrays(model: torch.nn.Module, x: np.ndarray, task: str, batch_size: int = 4096) -> np.ndarray:
    """Class probabilities (n, classes) for classification; predictions for regression, (n,) for one target.

    Regression models loaded with `load_checkpoint` already answer in the data's units.
    """
    if task not in (CLASSIFICATION, REGRESSION):
        raise ValueError(f"unknown task {task!r}")
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32), device=model_device(model))
    out = forward_batched(model, xt, batch_size)
    if task == CLASSIFICATION:
        return torch.softmax(out.float(), dim=1).cpu().numpy()
    values = out.float().cpu().numpy()
    return values.reshape(-1) if values.ndim == 2 and values.shape[1] == 1 else values
