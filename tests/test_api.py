"""The Python API and the Model Search-compatible layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import nasforge
from nasforge.core.errors import UserError
from nasforge.data.builtin import write_csv


def test_search_returns_a_usable_study(tmp_path: Path) -> None:
    data = write_csv("wine", tmp_path / "wine.csv")
    study = nasforge.search(data, label="target", trials=3, workers=1, epochs=10, test_fraction=0.25,
                            storage=f"sqlite:///{tmp_path / 'db.sqlite'}", study="wine", seed=1)
    best = study.best_trial
    assert best is not None and best.metrics["valid_accuracy"] > 0.5
    assert best.score == max(t.score for t in study.trials if t.score is not None)
    df = study.trials_dataframe()
    assert len(df) == 3 and {"number", "state", "valid_accuracy", "test_accuracy", "params"} <= set(df.columns)
    model = study.load_model()
    assert isinstance(model, torch.nn.Module)
    frame = pd.read_csv(data)
    labels = study.predict(frame.drop(columns=["target"]))
    assert len(labels) == len(frame)
    assert np.mean(labels.astype(str) == frame["target"].astype(str).to_numpy()) > 0.5
    again = nasforge.load_study("wine", storage=f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert again.best_trial is not None and again.best_trial.number == best.number


def test_regression_study_minimises_rmse(tmp_path: Path) -> None:
    study = nasforge.search("builtin:diabetes", trials=2, workers=1, epochs=5,
                            storage=f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert study.info.objective == "valid_rmse" and study.info.direction == "minimize"
    best = study.best_trial
    assert best is not None
    assert best.metrics["valid_rmse"] == min(t.metrics["valid_rmse"] for t in study.trials)


def test_trial_errors_are_user_errors(tmp_path: Path) -> None:
    study = nasforge.search("builtin:iris", trials=1, workers=1, epochs=1,
                            storage=f"sqlite:///{tmp_path / 'db.sqlite'}")
    with pytest.raises(UserError, match="no trial 99"):
        study.load_model(trial=99)


def test_model_search_try_models(tmp_path: Path) -> None:
    from nasforge.compat.model_search import constants, single_trainer
    from nasforge.compat.model_search.data import csv_data

    # Model Search's own example shape: no header, label first, numeric columns.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    path = tmp_path / "data.csv"
    pd.DataFrame(np.column_stack([y, x])).to_csv(path, header=False, index=False)
    trainer = single_trainer.SingleTrainer(
        data=csv_data.Provider(label_index=0, logits_dimension=2, record_defaults=[0, 0, 0, 0],
                               filename=str(path)),
        spec=constants.DEFAULT_DNN)
    study = trainer.try_models(number_models=3, train_steps=60, eval_steps=10, root_dir=str(tmp_path / "run"),
                               batch_size=32, experiment_name="example", experiment_owner="model_search_user")
    assert len(study.trials) == 3
    assert study.info.owner == "model_search_user"
    assert (tmp_path / "run" / "model_search.db").is_file()
    best = study.best_trial
    assert best is not None and best.metrics["valid_accuracy"] > 0.7
    assert 0 < best.metrics["steps"] <= 60  # train_steps is the budget; early stopping may end sooner


def test_model_search_provider_checks_the_file(tmp_path: Path) -> None:
    from nasforge.compat.model_search.data import csv_data

    path = tmp_path / "d.csv"
    pd.DataFrame({"a": [1, 2, 3, 4, 5, 6, 7, 8], "y": [0, 1] * 4}).to_csv(path, header=False, index=False)
    provider = csv_data.Provider(label_index=1, logits_dimension=2, record_defaults=[0, 0, 0], filename=str(path))
    with pytest.raises(UserError, match="record_defaults"):
        provider.search_options()
