"""Distillation losses against hand computation, and the lambda ramp."""

from __future__ import annotations

import math

import pytest
import torch

from nasforge.core.errors import ConfigError
from nasforge.ensemble.distill import distill_loss, ramp

S = torch.tensor([[1.0, 0.0]])  # student logits
T = torch.tensor([[0.0, 1.0]])  # teacher logits
Y = torch.tensor([0])


def _softmax(a: float, b: float) -> tuple[float, float]:
    ea, eb = math.exp(a), math.exp(b)
    return ea / (ea + eb), eb / (ea + eb)


def test_mse_losses() -> None:
    assert float(distill_loss("mse_logits", S, T, Y)) == pytest.approx(1.0)  # (1 + 1) / 2
    p = _softmax(1, 0)[0] - _softmax(0, 1)[0]  # both classes differ by the same amount
    assert float(distill_loss("mse_softmax", S, T, Y)) == pytest.approx(p * p)


def test_cross_entropy_with_temperature_and_balanced() -> None:
    temp = 2.0
    target = _softmax(0, 1 / temp)
    student = _softmax(1 / temp, 0)
    soft = -(target[0] * math.log(student[0]) + target[1] * math.log(student[1])) * temp * temp
    assert soft == pytest.approx(3.14125, abs=1e-4)
    assert float(distill_loss("cross_entropy", S, T, Y, temperature=temp)) == pytest.approx(soft)
    label = -math.log(_softmax(1, 0)[0])
    got = float(distill_loss("balanced", S, T, Y, temperature=temp, lam=0.5))
    assert got == pytest.approx(label + 0.5 * soft)
    with pytest.raises(ConfigError, match="--loss"):
        distill_loss("kl", S, T, Y)


def test_lambda_ramp() -> None:
    assert [ramp(i, 3, 0.0, 1.0) for i in range(3)] == [0.0, 0.5, 1.0]
    assert ramp(0, 1, 0.2, 0.8) == 0.8
