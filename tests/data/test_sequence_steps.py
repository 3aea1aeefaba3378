"""One label per step (sequence labelling): .npz with y of shape (cases, steps) and the long CSV with a label
on every row; padded steps carry PAD_LABEL and count in neither loss nor accuracy; per-step predictions;
one-line errors for malformed per-step input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nasforge.cli.main import main
from nasforge.core.errors import ConfigError, DataError
from nasforge.data.base import PAD_LABEL
from nasforge.data.loader import data_config, load_dataset
from nasforge.data.sequence import SequenceProvider
from nasforge.evaluators.metrics import accuracy
from nasforge.evaluators.train import task_loss


def _cases(count: int = 60, steps: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two channels; a step's class is 1 where channel 0 is above 0 (learnable at each step), unequal lengths."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, steps, 2))
    y = (x[:, :, 0] > 0).astype(np.int64)
    lengths = rng.integers(4, steps + 1, size=count)
    return x, y, lengths


def _npz(path: Path, test: bool = True) -> Path:
    x, y, lengths = _cases()
    parts = {"x_train": x[:48], "y_train": y[:48], "lengths_train": lengths[:48]}
    if test:
        parts |= {"x_test": x[48:], "y_test": y[48:], "lengths_test": lengths[48:]}
    np.savez(path, **parts)
    return path


def _long_csv(path: Path) -> Path:
    x, y, lengths = _cases(count=30)
    rows = [{"id": f"c{i}", "time": t, "a": x[i, t, 0], "b": x[i, t, 1], "label": ["low", "high"][y[i, t]]}
            for i in range(len(x)) for t in range(int(lengths[i]))]
    pd.DataFrame(rows).sample(frac=1.0, random_state=0).to_csv(path, index=False)  # rows in any order
    return path


def test_npz_per_step_labels_pad_with_the_ignore_label(tmp_path: Path) -> None:
    data = SequenceProvider(_npz(tmp_path / "s.npz")).load()
    assert data.spec.per_step and data.spec.num_outputs == 2
    assert data.test is not None and data.test.y.shape == (12, 12)
    mask = data.test.x[:, :, -1] == 1.0
    assert np.array_equal(data.test.y == PAD_LABEL, ~mask)  # padding <=> the ignore label
    _, y, lengths = _cases()
    assert np.array_equal(data.test.y[0, : lengths[48]], y[48, : lengths[48]])


def test_long_csv_with_a_label_per_row(tmp_path: Path) -> None:
    path = _long_csv(tmp_path / "s.csv")
    config = data_config(str(path), format="sequence", step_labels=True)
    data = load_dataset(config)
    assert data.spec.per_step and data.spec.class_names == ("high", "low")
    with pytest.raises(DataError, match=r"more than one 'label'.*step_labels=true"):
        SequenceProvider(path).load()


def test_loss_and_accuracy_count_real_steps_only() -> None:
    y = torch.tensor([[1, 0, PAD_LABEL], [0, PAD_LABEL, PAD_LABEL]])
    out = torch.zeros(2, 3, 2)
    out[0, 0, 1] = out[0, 1, 0] = out[1, 0, 0] = 5.0  # right on every real step
    out[0, 2, 0] = out[1, 1, 1] = out[1, 2, 1] = 50.0  # padding: anything
    assert accuracy(y.numpy(), out.numpy()) == 1.0
    assert accuracy(y.numpy(), out.argmax(dim=-1).numpy()) == 1.0
    expected = torch.nn.functional.cross_entropy(out[[0, 0, 1], [0, 1, 0]], torch.tensor([1, 0, 0]))
    assert float(task_loss(out, y, "classification")) == pytest.approx(float(expected))


@pytest.mark.parametrize(("arrays", "message"), [
    ({"x_train": np.zeros((4, 6, 1)), "y_train": np.zeros((4, 5))}, r"labels of shape \(4, 5\).*one per step"),
    ({"x_train": np.zeros((4, 6, 1)), "y_train": np.zeros((4, 6, 2))}, r"labels of shape \(4, 6, 2\)"),
    ({"x_train": np.zeros((4, 6, 1)), "y_train": np.full((4, 6), 0.5)}, "whole class numbers"),
])
def test_malformed_per_step_arrays_are_one_line(tmp_path: Path, arrays: dict[str, np.ndarray],
                                                message: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        SequenceProvider(tmp_path / "bad.npz").load()


def test_per_step_options_that_cannot_apply(tmp_path: Path, shared_data: Path) -> None:
    with pytest.raises(ConfigError, match=r"a \.ts file carries one label per case"):
        SequenceProvider(shared_data / "sequence" / "ItalyPowerDemand_TRAIN.ts", step_labels=True)
    x, y, _ = _cases()
    np.savez(tmp_path / "cases.npz", x_train=x, y_train=y[:, 0])
    with pytest.raises(DataError, match="step_labels=true but the labels are one per case"):
        SequenceProvider(tmp_path / "cases.npz", step_labels=True).load()
    np.savez(tmp_path / "mixed.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:, 0])
    with pytest.raises(DataError, match="one label per case but training cases one per step"):
        SequenceProvider(tmp_path / "mixed.npz").load()
    with pytest.raises(ConfigError, match="step_labels must be true or false"):
        SequenceProvider(tmp_path / "cases.npz", step_labels="yes")  # type: ignore[arg-type]


@pytest.mark.usefixtures("one_thread")
def test_per_step_study_from_search_to_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _npz(tmp_path / "s.npz")
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    common = ["--study", "steps", "--storage", storage]
    assert main(["search", "--data", str(path), "--data-option", "format=sequence", "--space", "sequence",
                 "--trials", "2", "--workers", "1", "--epochs", "15", "--no-progress", "--final-ensemble",
                 "--space-option", "max_depth=1", "--space-option", 'blocks=["conv3_16","gru_16","transformer_16_h2"]',
                 "--root", str(tmp_path), *common]) == 0
    capsys.readouterr()
    assert main(["predict", *common, "--data", str(path), "--evaluate"]) == 0
    accuracy_printed = float(capsys.readouterr().out.split("accuracy=")[1].split()[0])
    from nasforge.api import Study

    study = Study("steps", storage)
    assert len(study.trials) == 2  # --final-ensemble ends a per-step study without one (not supported there)
    best = study.best_trial
    assert best is not None and accuracy_printed == pytest.approx(best.metrics["test_accuracy"], abs=1e-6)
    assert best.metrics["test_accuracy"] > 0.7  # a step's class is readable from that step: well above chance
    out = tmp_path / "p.csv"
    assert main(["predict", *common, "--data", str(path), "--out", str(out), "--proba"]) == 0
    assert "wrote 111 predictions" in capsys.readouterr().err
    frame = pd.read_csv(out)
    _, _, lengths = _cases()
    assert list(frame.columns[:3]) == ["case", "step", "prediction"] and len(frame) == int(lengths[48:].sum())
    assert frame.groupby("case")["step"].max().tolist() == [int(n) - 1 for n in lengths[48:]]
    assert set(frame["prediction"]) <= {0, 1}
    assert np.allclose(frame[["proba_0", "proba_1"]].sum(axis=1), 1.0, atol=1e-5)
    for command in (["export", *common, "--out", str(tmp_path / "m.pt")], ["ensemble", *common]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "one label per step" in err[0]
    assert main(["search", "--data", str(path), "--data-option", "format=sequence", "--data-option",
                 "label=y", "--space", "sequence", *common]) == 2
    assert "--data-option label=...: use its own flag (--label)" in capsys.readouterr().err
