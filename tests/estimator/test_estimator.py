"""NASClassifier / NASRegressor inside scikit-learn's tools; a documented subset of check_estimator."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_iris
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks

import nasforge
from nasforge import NASClassifier, NASRegressor


def test_cross_val_score_on_a_builtin_dataset() -> None:
    x, y = load_iris(return_X_y=True)
    scores = cross_val_score(NASClassifier(trials=2, epochs=1), x, y, cv=3)
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))


def test_grid_search_over_a_pipeline() -> None:
    x, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scale", StandardScaler()), ("nas", NASClassifier(trials=1, epochs=1))])
    grid = GridSearchCV(pipe, {"nas__epochs": [1, 2]}, cv=2).fit(x, y)
    assert grid.best_params_["nas__epochs"] in (1, 2)
    assert set(grid.predict(x[:10])) <= {0, 1, 2}


def test_params_clone_labels_pickle_and_temporary_store(tmp_path: Path) -> None:
    model = NASClassifier(trials=1, epochs=1, seed=3)
    assert clone(model).get_params() == model.get_params()
    assert model.set_params(epochs=2).epochs == 2
    frame = pd.DataFrame(load_iris().data, columns=["a", "b", "c", "d"])
    labels = np.asarray(["setosa", "versicolor", "virginica"])[load_iris().target]
    model.fit(frame, labels)
    assert list(model.classes_) == ["setosa", "versicolor", "virginica"]
    predicted = model.predict(frame.head(8))
    assert set(predicted) <= set(model.classes_)
    proba = model.predict_proba(frame.head(8))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    checkpoint = model.predictor_.payload  # loaded into memory: the temporary store is gone
    assert checkpoint["data_spec"]["class_names"] == ["setosa", "versicolor", "virginica"]
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(frame.head(8)), predicted)
    with pytest.raises(ValueError, match="different columns"):
        model.predict(frame.rename(columns={"a": "z"}))


def test_regressor_with_storage_keeps_the_trials(tmp_path: Path) -> None:
    x, y = load_diabetes(return_X_y=True)
    storage = f"sqlite:///{tmp_path / 'kept.db'}"
    model = NASRegressor(trials=2, epochs=2, storage=storage).fit(x, y)
    assert model.predict(x[:5]).shape == (5,)
    assert np.isfinite(model.score(x, y))
    study = nasforge.load_study(model.study_name_, storage)
    assert len(study.trials) == 2 and study.best_trial.number == model.best_trial_


# The subset of check_estimator run here (each fit is a whole search, so the full list would take many minutes);
# docs/estimators.md lists it.
CHECKS = ("check_parameters_default_constructible", "check_no_attributes_set_in_init", "check_get_params_invariance",
          "check_set_params", "check_estimators_unfitted", "check_estimators_nan_inf", "check_fit2d_predict1d",
          "check_n_features_in", "check_classifiers_one_label", "check_estimators_pickle")


@pytest.mark.parametrize("check", CHECKS)
def test_check_estimator_subset(check: str) -> None:
    estimator = NASClassifier(trials=1, epochs=1)
    getattr(estimator_checks, check)(type(estimator).__name__, estimator)
