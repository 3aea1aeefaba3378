"""The train evaluator on images (any space whose build returns a conv net) and on language models."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture, JSONDict, Result, TrialSpec, TrialState
from nasforge.data.base import Dataset, DataSpec
from nasforge.data.loader import data_config, load_dataset
from nasforge.evaluators.train import TrainEvaluator

ARCH = Architecture("tiny", ())


class TinyConv(nn.Module):
    def __init__(self, spec: DataSpec) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(spec.input_shape[0], 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, spec.num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class GRULanguageModel(nn.Module):
    """Embedding, one GRU layer, a decoder; forward carries the hidden state when asked to."""

    def __init__(self, vocab: int, stateful: bool = True) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.gru = nn.GRU(16, 32, batch_first=True)
        self.out = nn.Linear(32, vocab)
        self.stateful = stateful

    def forward(self, ids: torch.Tensor, hidden: torch.Tensor | None = None) -> Any:
        y, hidden = self.gru(self.embed(ids), hidden)
        return (self.out(y), hidden) if self.stateful else self.out(y)


class TinySpace:
    """An unregistered one-point space, handed to `evaluate` directly."""

    name = "tiny"

    def __init__(self, stateful: bool = True) -> None:
        self.stateful = stateful

    def build(self, arch: Architecture, spec: DataSpec) -> nn.Module:
        if spec.task == "language_model":
            return GRULanguageModel(spec.num_outputs, self.stateful)
        return TinyConv(spec)


class Recorder:
    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def report(self, step: int, metrics: dict[str, float]) -> None:
        self.rows.append(metrics)


def run(evaluator: TrainEvaluator, *, seed: int = 0, budget: JSONDict | None = None, objective: str = "valid_accuracy",
        workdir: str | None = None, space: TinySpace | None = None) -> tuple[Result, Recorder]:
    spec = TrialSpec(study="t", number=0, arch={}, seed=seed, space="tiny", space_config={}, evaluator="train",
                     evaluator_config={}, budget=budget or {}, objective=objective, direction="maximize",
                     workdir=workdir)
    recorder = Recorder()
    result = evaluator.evaluate(ARCH, spec, recorder, space=space or TinySpace())
    assert result.state == TrialState.COMPLETE, result.error
    return result, recorder


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset(data_config("builtin:digits", as_images=True, test_fraction=0.2))


def _without_time(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k != "train_time"}


def test_image_classification_learns(digits: Dataset) -> None:
    ev = TrainEvaluator.from_dataset(digits, epochs=6, batch_size=32, lr=0.01, patience=None)
    result, recorder = run(ev)
    m = result.metrics
    assert m["valid_accuracy"] > 0.8 and m["test_accuracy"] > 0.75
    assert m["params"] == result.params == 8 * 9 + 2 * 8 + 16 * 8 * 9 + 16 + 16 * 10 + 10
    assert m["flops"] == 64 * 8 * 9 + 16 * 16 * 8 * 9 + 16 * 10  # conv and linear multiply-adds, one image
    assert m["data_fraction"] == 1.0 and len(recorder.rows) == 6


def test_augment_same_seed_same_metrics(digits: Dataset) -> None:
    ev = TrainEvaluator.from_dataset(digits, epochs=1, batch_size=64,
                                     augment={"crop_padding": 1, "flip": True, "cutout": 3})
    a, _ = run(ev, seed=3)
    b, _ = run(ev, seed=3)
    c, _ = run(ev, seed=4)
    assert _without_time(a.metrics) == _without_time(b.metrics) != _without_time(c.metrics)
    assert ev.augment is not None and ev.augment.cutout == 3


def test_channels_last_and_checkpoint(digits: Dataset, tmp_path: Path) -> None:
    plain, _ = run(TrainEvaluator.from_dataset(digits, epochs=1, batch_size=64, channels_last=False))
    ev = TrainEvaluator.from_dataset(digits, epochs=1, batch_size=64, channels_last=True)
    fast, _ = run(ev, workdir=str(tmp_path))
    assert fast.metrics["valid_loss"] == pytest.approx(plain.metrics["valid_loss"], rel=1e-3)
    assert fast.checkpoint is not None
    payload = torch.load(fast.checkpoint, weights_only=True)
    assert payload["preprocessor"]["format"] == "nasforge.images" and payload["data_spec"]["input_shape"] == [1, 8, 8]
    model = TinyConv(digits.spec)
    model.load_state_dict(payload["state_dict"])
    assert all(t.is_contiguous() for t in payload["state_dict"].values())


def test_bf16_precision_trains_and_is_seeded(digits: Dataset) -> None:
    """bfloat16 autocast is a speed option: it still learns, stays seeded and leaves float32 weights."""
    ev = TrainEvaluator.from_dataset(digits, epochs=6, batch_size=32, lr=0.01, patience=None, precision="bf16")
    a, _ = run(ev, seed=2)
    b, _ = run(ev, seed=2)
    assert _without_time(a.metrics) == _without_time(b.metrics)
    assert a.metrics["valid_accuracy"] > 0.8
    fp32, _ = run(TrainEvaluator.from_dataset(digits, epochs=6, batch_size=32, lr=0.01, patience=None,
                                              precision="fp32"), seed=2)
    assert a.metrics["valid_loss"] != fp32.metrics["valid_loss"]  # the forward really ran in bfloat16


def test_auto_precision_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    from nasforge.evaluators import devices

    cpu = torch.device("cpu")
    assert devices.resolve_precision("fp32", cpu) == "fp32" and devices.resolve_precision("bf16", cpu) == "bf16"
    monkeypatch.setattr(devices, "native_bf16", lambda device: True)
    assert devices.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(devices, "native_bf16", lambda device: False)
    assert devices.resolve_precision("auto", cpu) == "fp32"


def test_optimizers_use_fused_kernels() -> None:
    from nasforge.evaluators.train import make_optimizer

    params = list(nn.Linear(3, 2).parameters())
    for name in ("adam", "adamw", "sgd"):
        optimizer = make_optimizer(params, {"optimizer": name, "learning_rate": 0.1})
        assert optimizer.defaults["fused"] is True, name
    assert not make_optimizer(params, {"optimizer": "rmsprop", "learning_rate": 0.1}).defaults.get("fused")


def test_data_fraction_budget(digits: Dataset) -> None:
    ev = TrainEvaluator.from_dataset(digits, epochs=1, batch_size=64)
    full, _ = run(ev)
    quarter, _ = run(ev, budget={"data_fraction": 0.25})
    rows = len(digits.train)
    assert full.metrics["steps"] == math.ceil(rows / 64)
    assert quarter.metrics["steps"] == math.ceil(round(rows / 4) / 64) and quarter.metrics["data_fraction"] == 0.25
    subset = ev._prepare(digits, torch.device("cpu"), 0.25).train
    counts = np.bincount(subset.y.numpy(), minlength=10) / len(subset.y)
    assert np.abs(counts - np.bincount(digits.train.y) / rows).max() < 0.01  # stratified
    half = ev._prepare(digits, torch.device("cpu"), 0.5).train
    assert {tuple(r) for r in subset.x.flatten(1).tolist()} <= {tuple(r) for r in half.x.flatten(1).tolist()}
    option, _ = run(TrainEvaluator.from_dataset(digits, epochs=1, batch_size=64, data_fraction=0.25))
    assert _without_time(option.metrics) == _without_time(quarter.metrics)


def test_cosine_schedule_and_sgd_options(digits: Dataset) -> None:
    ev = TrainEvaluator.from_dataset(digits, steps=60, batch_size=64, patience=None, optimizer="sgd", lr=0.1,
                                     momentum=0.8, nesterov=True, weight_decay=1e-4, schedule="cosine")
    result, recorder = run(ev)
    per_epoch = math.ceil(len(digits.train) / 64)
    lrs = [row["lr"] for row in recorder.rows]
    expected = [0.05 * (1 + math.cos(math.pi * min(k * per_epoch, 60) / 60)) for k in range(len(lrs))]
    assert lrs == pytest.approx(expected) and result.metrics["steps"] == 60
    exponential = TrainEvaluator.from_dataset(digits, epochs=3, batch_size=256, schedule="exponential", lr=0.01)
    _, recorder = run(exponential)
    assert [row["lr"] for row in recorder.rows] == pytest.approx([0.01, 0.0097, 0.01 * 0.97 ** 2])


@pytest.mark.parametrize(("options", "message"), [
    ({"optimizer": "lion"}, "optimizer must be one of"),
    ({"schedule": "step"}, "schedule must be one of"),
    ({"data_fraction": 0}, "data_fraction must be a number > 0"),
    ({"momentum": 0.0, "nesterov": True}, "nesterov needs momentum"),
    ({"augment": {"flip": "yes"}}, "flip must be true or false"),
    ({"precision": "fp16"}, "precision must be one of"),
])
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainEvaluator(**options)


def test_augment_needs_images() -> None:
    rng = np.random.default_rng(0)
    from nasforge.data.base import Split

    flat = Dataset(DataSpec("classification", (4,), 2), Split(rng.normal(size=(20, 4)).astype(np.float32),
                                                               np.arange(20) % 2), Split(np.zeros((4, 4), np.float32),
                                                                                         np.arange(4) % 2))
    ev = TrainEvaluator.from_dataset(flat, augment={"flip": True})
    spec = TrialSpec("t", 0, {}, 0, "dnn", {}, "train", {}, {}, "valid_accuracy", "maximize", None)
    with pytest.raises(ConfigError, match="augment needs image data"):
        ev.evaluate(ARCH, spec, Recorder(), space=TinySpace())


def test_cifar_subset_end_to_end(shared_data: Path) -> None:
    path = shared_data / "cifar10_small" / "cifar10_jpeg_q75_small_5k_1k.npz"
    data = load_dataset(data_config(str(path), max_train=200, valid_fraction=0.2))
    ev = TrainEvaluator.from_dataset(data, epochs=1, batch_size=50, augment={"crop_padding": 4, "flip": True})
    result, _ = run(ev)
    assert 0.0 <= result.metrics["test_accuracy"] <= 1.0 and result.metrics["flops"] > 0


# ----------------------------------------------------------------------------- language models


def write_corpus(folder: Path, seed: int = 0) -> Path:
    """Sentences from a tiny grammar: predictable enough that a GRU beats the uniform guess quickly."""
    rng = np.random.default_rng(seed)
    subjects, verbs, objects = ["the cat", "a dog", "my bird"], ["sees", "likes"], ["the mat", "a ball", "food"]

    def lines(n: int) -> str:
        return "".join(f" {subjects[rng.integers(3)]} {verbs[rng.integers(2)]} {objects[rng.integers(3)]} \n"
                       for _ in range(n))

    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", 500), ("valid", 60), ("test", 60)):
        (folder / f"toy.{name}.txt").write_text(lines(n))
    return folder


@pytest.fixture(scope="module")
def toy_lm(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return load_dataset(data_config(str(write_corpus(tmp_path_factory.mktemp("corpus"))), bptt=8))


def test_language_model_perplexity_decreases(toy_lm: Dataset) -> None:
    vocab = toy_lm.spec.num_outputs
    ev = TrainEvaluator.from_dataset(toy_lm, epochs=4, batch_size=8, lr=0.01, patience=None)
    result, recorder = run(ev, objective="valid_perplexity")
    m = result.metrics
    assert set(m) >= {"valid_perplexity", "valid_loss", "test_perplexity", "test_loss", "params", "flops"}
    assert m["valid_perplexity"] == pytest.approx(math.exp(m["valid_loss"]))
    ppl = [row["valid_perplexity"] for row in recorder.rows]
    assert ppl[-1] < ppl[0] < vocab and m["valid_perplexity"] < 6  # uniform guessing would be ~vocab (14)
    assert m["steps"] == 4 * math.ceil((len(toy_lm.train) // 8) / 8)
    assert m["flops"] == 8 * (3 * (16 * 32 + 32 * 32) + 32 * vocab)  # GRU gates and decoder, one window


def test_language_model_seeded_stateless_and_fraction(toy_lm: Dataset) -> None:
    ev = TrainEvaluator.from_dataset(toy_lm, epochs=1, batch_size=8)
    a, _ = run(ev, seed=1, objective="valid_perplexity")
    b, _ = run(ev, seed=1, objective="valid_perplexity")
    assert _without_time(a.metrics) == _without_time(b.metrics)
    stateless, _ = run(ev, seed=1, objective="valid_perplexity", space=TinySpace(stateful=False))
    assert math.isfinite(stateless.metrics["valid_perplexity"])
    half, _ = run(ev, seed=1, objective="valid_perplexity", budget={"data_fraction": 0.5})
    assert half.metrics["steps"] < a.metrics["steps"]


def test_launch_minimises_perplexity(tmp_path: Path) -> None:
    from nasforge.launch import build_config

    config = build_config(data=str(write_corpus(tmp_path / "corpus")), space="dnn", strategy="random", trials=1,
                          progress=False)
    assert (config.objective, config.direction) == ("valid_perplexity", "minimize")
    assert config.evaluator_config["data"]["kind"] == "text"
