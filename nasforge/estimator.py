"""scikit-learn estimators: `NASClassifier` and `NASRegressor` run a search in `fit` and keep its best model.

They follow scikit-learn's conventions (parameters stored as given in `__init__`, fitted attributes ending
in `_`, `clone`, `Pipeline`, `cross_val_score`, `GridSearchCV`). `fit` is `nasforge.search` on the arrays
(see docs/estimators.md); the best complete trial (an ensemble trial when one wins) is loaded into memory,
so the estimator predicts and pickles without its store. By default the store is a temporary SQLite file
removed after `fit`; `storage=` keeps the trials.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted

from nasforge.core.errors import UserError
from nasforge.data.provider import Provider


class _Fit(Provider):
    """The arrays of one `fit` call: labels already coded 0..k-1 (classification) or numbers."""

    def __init__(self, x: Any, y: np.ndarray, task: str, names: list[str] | None, valid_fraction: float,
                 seed: int) -> None:
        self._x, self._y, self.task, self._names = x, y, task, names
        self.valid_fraction, self.seed = valid_fraction, seed

    @property
    def name(self) -> str:
        return "estimator"

    def train(self) -> tuple[Any, np.ndarray]:
        return self._x, self._y

    def class_names(self) -> list[str] | None:
        return self._names


class _NASEstimator(BaseEstimator):
    _task = "classification"

    def __init__(self, trials: int = 10, epochs: int | None = None, space: str = "dnn",
                 strategy: str = "model_search", workers: int = 1, valid_fraction: float = 0.2,
                 final_ensemble: bool = False, storage: str | None = None, study: str | None = None,
                 seed: int = 0, search_options: dict[str, Any] | None = None) -> None:
        self.trials = trials
        self.epochs = epochs
        self.space = space
        self.strategy = strategy
        self.workers = workers
        self.valid_fraction = valid_fraction
        self.final_ensemble = final_ensemble
        self.storage = storage
        self.study = study
        self.seed = seed
        self.search_options = search_options

    # ---- fitting -----------------------------------------------------------------------------
    def _search(self, x: Any, y: np.ndarray, names: list[str] | None) -> None:
        from nasforge.api import search

        temporary = tempfile.mkdtemp(prefix="nasforge-estimator-") if self.storage is None else None
        storage = self.storage or f"sqlite:///{temporary}/nasforge.db"
        try:
            options = {"trials": self.trials, "epochs": self.epochs, "space": self.space, "strategy": self.strategy,
                       "workers": self.workers, "storage": storage, "study": self.study, "seed": self.seed,
                       "baseline": False, "final_ensemble": self.final_ensemble, **dict(self.search_options or {})}
            data = _Fit(x, y, self._task, names, self.valid_fraction, self.seed)
            study = search(provider=data, **{k: v for k, v in options.items() if v is not None})
            best = study.trial()
            self.predictor_ = study.predictor(best.number)
            self.best_trial_ = best.number
            self.best_score_ = best.score
            self.best_metrics_ = dict(best.metrics)
            self.study_name_ = study.name
            study.store.dispose()
        except UserError as exc:  # scikit-learn's tools expect ValueError for data they cannot use
            raise ValueError(str(exc)) from exc
        finally:
            if temporary is not None:
                shutil.rmtree(temporary, ignore_errors=True)

    def _inputs(self, x: Any, *, fitting: bool) -> Any:
        """A DataFrame keeps its columns (text included); anything else becomes a finite float array."""
        if isinstance(x, pd.DataFrame):
            if fitting:
                self.feature_names_in_ = np.asarray([str(c) for c in x.columns], dtype=object)
            elif hasattr(self, "feature_names_in_") and list(map(str, x.columns)) != list(self.feature_names_in_):
                raise ValueError("X has different columns than during fit")
            frame = x.rename(columns=str)
        else:
            frame = check_array(x, dtype=np.float64)
        if fitting:
            self.n_features_in_ = int(frame.shape[1])
        elif frame.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {frame.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input")
        return frame

    def _outputs(self, x: Any) -> np.ndarray:
        check_is_fitted(self, "predictor_")
        inputs = self._inputs(x, fitting=False)
        if isinstance(inputs, np.ndarray) and hasattr(self, "feature_names_in_"):
            inputs = pd.DataFrame(inputs, columns=list(self.feature_names_in_))
        return np.asarray(self.predictor_.predict_raw(inputs))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True  # trials run in parallel may finish in any order
        return tags


class NASClassifier(ClassifierMixin, _NASEstimator):
    """Neural architecture search as a classifier: `fit` searches, `predict`/`predict_proba` use the best model."""

    def fit(self, X: Any, y: Any) -> NASClassifier:
        x = self._inputs(X, fitting=True)
        y = np.asarray(y.to_numpy() if isinstance(y, pd.Series | pd.DataFrame) else y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        check_classification_targets(y)
        if len(y) != len(x):
            raise ValueError(f"X has {len(x)} rows but y has {len(y)}")
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two classes in y, got 1 class")
        self._search(x, codes.astype(np.int64), [str(c) for c in self.classes_])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._outputs(X).reshape(-1, len(self.classes_))

    def predict(self, X: Any) -> np.ndarray:
        indices = self.predict_proba(X).argmax(axis=1)
        return np.asarray(self.classes_[indices])


class NASRegressor(RegressorMixin, _NASEstimator):
    """Neural architecture search as a regressor: `fit` searches, `predict` uses the best model."""

    _task = "regression"

    def fit(self, X: Any, y: Any) -> NASRegressor:
        x = self._inputs(X, fitting=True)
        y = np.asarray(y.to_numpy() if isinstance(y, pd.Series | pd.DataFrame) else y, dtype=np.float64)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"y must be one value per row of X (X has {len(x)} rows, y has shape {y.shape})")
        if not np.isfinite(y).all():
            raise ValueError("y has missing or infinite values")
        self._search(x, y.astype(np.float32), None)
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self._outputs(X).reshape(-1)
