"""Combining members' outputs: weighted average of probabilities, of logits, or of regression values.

Everything here works on NumPy prediction matrices (one per member, rows aligned), so selection,
weight fitting and scoring never touch a model; `EnsembleModule` does the same sum inside torch
for `predict` and `load_model`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from nasforge.core.errors import ConfigError
from nasforge.data.base import CLASSIFICATION, REGRESSION

PROBABILITIES = "probabilities"
LOGITS = "logits"
COMBINES = (PROBABILITIES, LOGITS)
_TINY = 1e-12


def check_combine(combine: str) -> str:
    if combine not in COMBINES:
        raise ConfigError(f"--combine must be one of {', '.join(COMBINES)}, got {combine!r}")
    return combine


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def member_terms(outputs: np.ndarray, task: str, combine: str) -> np.ndarray:
    """What gets averaged for one member: its probabilities, its logits, or its regression values."""
    out = np.asarray(outputs, dtype=np.float64)
    if task == CLASSIFICATION and combine == PROBABILITIES:
        return softmax(out)
    return out.reshape(out.shape[0], -1)


def finish(total: np.ndarray, task: str, combine: str) -> np.ndarray:
    """A weighted sum of member terms -> class probabilities (classification) or values (regression)."""
    if task == CLASSIFICATION and combine == LOGITS:
        return softmax(total)
    return total


def combined(terms: Sequence[np.ndarray], weights: Sequence[float], task: str, combine: str) -> np.ndarray:
    """Probabilities or values of the ensemble with these member terms and (normalised) weights."""
    w = normalise(weights)
    total = sum(wi * t for wi, t in zip(w, terms))
    return finish(np.asarray(total), task, combine)


def normalise(weights: Sequence[float]) -> list[float]:
    w = [float(x) for x in weights]
    if not w or any(x < 0 or not math.isfinite(x) for x in w) or sum(w) <= 0:
        raise ConfigError(f"ensemble weights must be non-negative and not all zero, got {w}")
    s = sum(w)
    return [x / s for x in w]


def scores(pred: np.ndarray, y: np.ndarray, task: str, prefix: str) -> dict[str, float]:
    """Accuracy and mean negative log-likelihood (classification) or rmse and r2 (regression)."""
    from nasforge.evaluators.metrics import accuracy, r2, rmse

    if task == CLASSIFICATION:
        y = np.asarray(y).reshape(-1).astype(np.int64)
        p = np.clip(pred[np.arange(len(y)), y], _TINY, None)
        return {f"{prefix}_accuracy": accuracy(y, pred), f"{prefix}_loss": float(-np.mean(np.log(p)))}
    if task == REGRESSION:
        return {f"{prefix}_rmse": rmse(y, pred), f"{prefix}_r2": r2(y, pred)}
    raise ConfigError(f"ensembles support classification and regression studies, not {task}")


def rank(metrics: dict[str, float], task: str, prefix: str = "valid") -> tuple[float, float]:
    """Higher is better: (accuracy, -loss) for classification, so accuracy ties go to the better fit."""
    if task == CLASSIFICATION:
        return metrics[f"{prefix}_accuracy"], -metrics[f"{prefix}_loss"]
    return -metrics[f"{prefix}_rmse"], metrics[f"{prefix}_r2"]


class EnsembleModule(nn.Module):
    """Members' weighted combination as one module. For classification it returns log-probabilities,
    so the softmax that `predict` applies gives the ensemble's probabilities."""

    weights: torch.Tensor

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float], combine: str, task: str) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", torch.tensor(normalise(weights), dtype=torch.float32))
        self.combine = check_combine(combine)
        self.task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [m(x) for m in self.members]
        if self.task == CLASSIFICATION and self.combine == PROBABILITIES:
            probs = sum(w * torch.softmax(o.float(), dim=1) for w, o in zip(self.weights, outs))
            return torch.log(torch.as_tensor(probs).clamp_min(_TINY))
        total = sum(w * o.float() for w, o in zip(self.weights, outs))
        out = torch.as_tensor(total)
        return torch.log_softmax(out, dim=1) if self.task == CLASSIFICATION else out
