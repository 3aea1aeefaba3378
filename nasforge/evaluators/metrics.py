"""Metric functions on NumPy arrays and batched prediction, shared by training, reports and `predict`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from nasforge.data.base import CLASSIFICATION, LANGUAGE_MODEL, PAD_LABEL, REGRESSION


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction correct; `y_pred` is class indices or a (n, classes) score/probability matrix. Per-step labels
    (n, steps) take (n, steps) indices or (n, steps, classes) scores; padded steps (PAD_LABEL) do not count."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    scores = y_pred.ndim == 3 or (y_pred.ndim == 2 and y_pred.shape != y_true.shape)
    labels = (y_pred.argmax(axis=-1) if scores else y_pred).reshape(-1)
    y_true = y_true.reshape(-1)
    real = y_true != PAD_LABEL
    if not real.any():
        return float("nan")
    return float(np.mean(labels[real] == y_true[real]))


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


def perplexity(mean_loss: float) -> float:
    """exp of the mean per-token cross-entropy (nats); inf rather than an overflow error."""
    return math.exp(mean_loss) if mean_loss < 700 else math.inf


def multiply_adds(model: torch.nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one eval-mode forward pass on `example` (the NAS papers' "FLOPs").

    Counted at the operator level by torch's FlopCounterMode (which reports 2 per multiply-add), so
    functional code and recurrent cells count too; element-wise ops and normalisation are left out.
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(example)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2


def example_input(task: str, input_shape: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """One input of a spec's shape: token ids for language models, zeros otherwise."""
    dtype = torch.long if task == LANGUAGE_MODEL else torch.float32
    return torch.zeros((1, *input_shape), dtype=dtype, device=device)


def model_flops(model: torch.nn.Module, task: str, input_shape: Sequence[int]) -> float | None:
    """Multiply-adds for one input of `input_shape` (one window of tokens for a language model); None if uncountable.

    `nasforge.models.flops.count_flops` (conv and linear layers, the count every space reports) where it
    sees the whole model; torch's operator-level count where built-in recurrent layers hide from it.
    """
    try:
        from nasforge.models.flops import count_flops
    except ImportError:  # pragma: no cover - the models package without its counter
        count_flops = None  # type: ignore[assignment]
    recurrent = any(isinstance(m, torch.nn.RNNBase | torch.nn.RNNCellBase) for m in model.modules())
    if count_flops is not None and not recurrent and model_device(model).type == "cpu":
        try:
            return float(count_flops(model, tuple(input_shape),
                                     dtype=torch.long if task == LANGUAGE_MODEL else torch.float32))
        except Exception:  # a model the hook counter cannot feed: try the operator-level count
            pass
    try:
        return float(multiply_adds(model, example_input(task, input_shape, model_device(model))))
    except Exception:
        return None


def model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def forward_batched(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 4096,
                    channels_last: bool = False) -> torch.Tensor:
    """Eval-mode outputs for `x` (already on the model's device) in batches, without autograd.

    `channels_last` hands image batches over in the layout of a channels-last model.
    """
    model.eval()
    layout = torch.channels_last if channels_last and x.dim() == 4 else torch.preserve_format
    with torch.inference_mode():
        # max(n, 1): an empty input still goes through the model once, giving a (0, outputs) answer
        parts = [model(x[i:i + batch_size].contiguous(memory_format=layout))
                 for i in range(0, max(x.shape[0], 1), batch_size)]
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
        return torch.softmax(out.float(), dim=-1).cpu().numpy()  # (n, classes), or (n, steps, classes) per step
    values = out.float().cpu().numpy()
    return values.reshape(-1) if values.ndim == 2 and values.shape[1] == 1 else values
