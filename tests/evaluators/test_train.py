from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_digits

from nasforge.core import registry
from nasforge.core.types import JSONDict, Result, TrialSpec, TrialState
from nasforge.data.base import Dataset, DataSpec, Split
from nasforge.evaluators import metrics as M
from nasforge.evaluators.train import TrainEvaluator, load_checkpoint
from nasforge.spaces.dnn import DNNSpace


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, dict[str, float]]] = []

    def report(self, step: int, metrics: dict[str, float]) -> None:
        self.calls.append((step, metrics))


def _split(x: np.ndarray, y: np.ndarray, n_train: int, n_valid: int) -> tuple[Split, Split, Split]:
    return (Split(x[:n_train], y[:n_train]), Split(x[n_train:n_train + n_valid], y[n_train:n_train + n_valid]),
            Split(x[n_train + n_valid:], y[n_train + n_valid:]))


@pytest.fixture(scope="module")
def digits() -> Dataset:
    raw = load_digits()
    order = np.random.default_rng(0).permutation(len(raw.target))
    x = (raw.images[order] / 16.0).astype(np.float32)  # (n, 8, 8): the builder flattens
    y = raw.target[order].astype(np.int64)
    train, valid, test = _split(x, y, 1200, 300)
    spec = DataSpec("classification", (8, 8), 10, class_names=tuple(str(i) for i in range(10)))
    return Dataset(spec, train, valid, test)


@pytest.fixture(scope="module")
def diabetes() -> Dataset:
    raw = load_diabetes()
    x = raw.data.astype(np.float32)
    x = (x - x.mean(0)) / x.std(0)
    y = raw.target.astype(np.float32)
    train, valid, test = _split(x, y, 300, 70)
    return Dataset(DataSpec("regression", (10,), 1), train, valid, test)


def _spec(arch: JSONDict, seed: int = 0, objective: str = "valid_accuracy", workdir: str | None = None,
          budget: JSONDict | None = None) -> TrialSpec:
    return TrialSpec(study="t", number=0, arch=arch, seed=seed, space="dnn", space_config=DNNSpace().config(),
                     evaluator="train", evaluator_config={}, budget=budget or {}, objective=objective,
                     direction="maximize", workdir=workdir)


def _run(evaluator: TrainEvaluator, description: JSONDict, **spec_args: Any) -> tuple[Result, Recorder]:
    space = DNNSpace()
    arch = space.from_json(description)
    recorder = Recorder()
    result = evaluator.evaluate(arch, _spec(space.to_json(arch), **spec_args), recorder)
    return result, recorder


MLP = {"blocks": ["fc_128"], "learning_rate": 0.003}


def test_registered() -> None:
    assert registry.resolve("evaluator", "train") is TrainEvaluator


def test_digits_learns(digits: Dataset) -> None:
    ev = TrainEvaluator.from_dataset(digits, epochs=8, batch_size=64)
    result, recorder = _run(ev, {**MLP, "normalization": "batch", "lr_decay": 0.95, "grad_clip": 5.0})
    assert result.state == TrialState.COMPLETE, result.error
    m = result.metrics
    assert m["valid_accuracy"] > 0.9 and m["test_accuracy"] > 0.85
    for name in ("valid_loss", "test_loss", "train_loss", "epochs", "steps", "train_time"):
        assert math.isfinite(m[name]) and isinstance(m[name], float)
    assert result.params == 64 * 128 + 2 * 128 + 128 * 10 + 10  # no fc bias before batch norm
    assert len(result.curve) == m["epochs"] == len(recorder.calls)
    assert [step for step, _ in recorder.calls] == list(range(1, len(recorder.calls) + 1))
    assert result.checkpoint is None


def test_regression_reports_original_units(diabetes: Dataset) -> None:
    ev = TrainEvaluator.from_dataset(diabetes, epochs=15, batch_size=32, patience=None)
    result, _ = _run(ev, {"blocks": ["fc_64"], "learning_rate": 0.003}, objective="valid_rmse")
    assert result.state == TrialState.COMPLETE, result.error
    m = result.metrics
    for name in ("valid_rmse", "valid_r2", "valid_loss", "test_rmse", "test_r2"):
        assert math.isfinite(m[name])
    assert 30 < m["valid_rmse"] < 80  # target std is ~77: in data units, and better than the mean
    assert m["valid_r2"] > 0.2


def test_same_seed_same_metrics(digits: Dataset) -> None:
    ev = TrainEvaluator.from_dataset(digits, epochs=2, batch_size=64)
    arch = {"blocks": ["res_fc_64", "fc_64"], "dropout": 0.1, "optimizer": "sgd", "learning_rate": 0.03}
    a, _ = _run(ev, arch, seed=7)
    b, _ = _run(ev, arch, seed=7)
    c, _ = _run(ev, arch, seed=8)
    strip = lambda m: {k: v for k, v in m.items() if k != "train_time"}  # noqa: E731
    assert strip(a.metrics) == strip(b.metrics)
    assert strip(a.metrics) != strip(c.metrics)


def test_step_budget(digits: Dataset) -> None:
    ev = TrainEvaluator.from_dataset(digits, steps=30, batch_size=64, patience=None)  # 19 steps an epoch
    result, _ = _run(ev, MLP)
    assert result.metrics["steps"] == 30 and result.metrics["epochs"] == 2
    # a trial's budget overrides the evaluator's
    result, _ = _run(ev, MLP, budget={"steps": 5})
    assert result.metrics["steps"] == 5 and result.metrics["epochs"] == 1
    result, _ = _run(ev, MLP, budget={"epochs": 3})
    assert result.metrics["epochs"] == 3 and result.metrics["steps"] == 3 * 19


def test_early_stopping(digits: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    # a zero learning rate: no epoch after the first can improve on it
    original = DNNSpace.training_hparams
    monkeypatch.setattr(DNNSpace, "training_hparams", lambda self, a: {**original(self, a), "learning_rate": 0.0})
    ev = TrainEvaluator.from_dataset(digits, epochs=50, batch_size=256, patience=2)
    result, recorder = _run(ev, MLP)
    assert result.state == TrialState.COMPLETE
    assert result.metrics["epochs"] == 3 and result.metrics["best_epoch"] == 1
    assert len(recorder.calls) == 3


def test_non_finite_loss_fails_cleanly(diabetes: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DNNSpace, "training_hparams", lambda self, a: {
        "optimizer": "sgd", "learning_rate": 1e12, "lr_decay": 1.0, "grad_clip": None})
    ev = TrainEvaluator.from_dataset(diabetes, epochs=3)
    result, _ = _run(ev, {"blocks": ["fc_64", "fc_64"]}, objective="valid_rmse")
    assert result.state == TrialState.FAILED
    assert result.error == "nan: non-finite loss at epoch 1"


@pytest.mark.parametrize("which", ["digits", "diabetes"])
def test_checkpoint_round_trip(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    dataset: Dataset = request.getfixturevalue(which)
    ev = TrainEvaluator.from_dataset(dataset, epochs=2, batch_size=64)
    objective = "valid_accuracy" if which == "digits" else "valid_rmse"
    arch = {"blocks": ["fc_64", "res_fc_64"], "normalization": "batch", "dropout": 0.2}
    result, _ = _run(ev, arch, objective=objective, workdir=str(tmp_path / "trial"))
    assert result.checkpoint == str(tmp_path / "trial" / "model.pt")
    model, payload = load_checkpoint(result.checkpoint)
    assert payload["space"] == "dnn" and payload["metrics"] == result.metrics
    assert DNNSpace().from_json(payload["arch"]) == DNNSpace().from_json(arch)
    task = dataset.spec.task
    assert dataset.test is not None
    pred = M.predict_arrays(model, dataset.test.x, task, batch_size=50)
    again = M.predict_arrays(load_checkpoint(result.checkpoint)[0], dataset.test.x, task)
    np.testing.assert_array_equal(pred, again)
    if task == "classification":
        assert pred.shape == (len(dataset.test), 10)
        np.testing.assert_allclose(pred.sum(1), 1.0, rtol=1e-5)
        assert M.accuracy(dataset.test.y, pred) == pytest.approx(result.metrics["test_accuracy"])
    else:
        assert pred.shape == (len(dataset.test),)
        assert M.rmse(dataset.test.y, pred) == pytest.approx(result.metrics["test_rmse"], rel=1e-4)


def test_save_weights_off(digits: Dataset, tmp_path: Path) -> None:
    ev = TrainEvaluator.from_dataset(digits, epochs=1, save_weights=False)
    result, _ = _run(ev, MLP, workdir=str(tmp_path))
    assert result.checkpoint is None and not (tmp_path / "model.pt").exists()


def test_metric_functions() -> None:
    assert M.accuracy(np.array([0, 1, 2]), np.array([0, 1, 1])) == pytest.approx(2 / 3)
    assert M.accuracy(np.array([1, 0]), np.array([[0.2, 0.8], [0.9, 0.1]])) == 1.0
    assert M.rmse(np.array([1.0, 2.0]), np.array([1.0, 4.0])) == pytest.approx(math.sqrt(2))
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert M.r2(y, y) == 1.0 and M.r2(y, np.full(4, 2.5)) == pytest.approx(0.0)
    from sklearn.metrics import r2_score

    p = np.array([1.5, 1.7, 3.3, 4.4])
    assert M.r2(y, p) == pytest.approx(r2_score(y, p))
