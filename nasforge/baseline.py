"""The gradient-boosting baseline a tabular search is compared with, fitted on the search's own split.

scikit-learn's HistGradientBoostingClassifier / HistGradientBoostingRegressor with default settings
(random_state = the study seed) is trained on the same model-ready training rows the networks see and
scored on the same validation and test rows. Its metrics are stored with the study (`studies.baseline`)
and printed next to the searched model by `search`, `trials` and `show`, so a user sees whether the
search beat it. Regression is judged on RMSE and R².
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from nasforge.core.types import JSONDict
from nasforge.data.base import CLASSIFICATION, REGRESSION, Dataset

CLASSIFIER = "HistGradientBoostingClassifier"
REGRESSOR = "HistGradientBoostingRegressor"
_TINY = 1e-12


def applies_to(dataset: Dataset) -> bool:
    """Tables only: flat features, classification or a single regression target."""
    if dataset.spec.task not in (CLASSIFICATION, REGRESSION) or len(dataset.spec.input_shape) != 1:
        return False
    y = np.asarray(dataset.train.y)
    return dataset.spec.task == CLASSIFICATION or y.ndim == 1 or y.shape[1] == 1


def fit_baseline(dataset: Dataset, seed: int = 0) -> JSONDict:
    """Fit and score the baseline; returns {"model", "settings", "fit_s", "valid_*", "test_*"}."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    start = time.perf_counter()
    classify = dataset.spec.task == CLASSIFICATION
    model: Any = (HistGradientBoostingClassifier(random_state=seed) if classify
                  else HistGradientBoostingRegressor(random_state=seed))
    y_train = np.asarray(dataset.train.y)
    model.fit(np.asarray(dataset.train.x), y_train if classify else y_train.reshape(-1))
    fit_s = time.perf_counter() - start
    out: JSONDict = {"model": CLASSIFIER if classify else REGRESSOR,
                     "settings": f"scikit-learn defaults, random_state={seed}", "fit_s": round(fit_s, 3)}
    splits = [("valid", dataset.valid)]
    if dataset.test is not None and len(dataset.test):
        splits.append(("test", dataset.test))
    for prefix, split in splits:
        out.update(_scores(model, np.asarray(split.x), np.asarray(split.y), classify, prefix,
                           dataset.spec.num_outputs))
    return out


def _scores(model: Any, x: np.ndarray, y: np.ndarray, classify: bool, prefix: str, classes: int) -> JSONDict:
    from nasforge.evaluators.metrics import accuracy, r2, rmse

    if classify:
        proba = np.zeros((len(x), max(classes, 1)))
        proba[:, np.asarray(model.classes_, dtype=np.int64)] = model.predict_proba(x)
        y = y.reshape(-1).astype(np.int64)
        picked = np.clip(proba[np.arange(len(y)), y], _TINY, None)
        return {f"{prefix}_accuracy": accuracy(y, proba), f"{prefix}_loss": float(-np.mean(np.log(picked)))}
    pred = model.predict(x).reshape(-1, 1)
    return {f"{prefix}_rmse": rmse(y, pred), f"{prefix}_r2": r2(y, pred)}


def metric_names(objective: str) -> list[str]:
    """The metrics a comparison shows: accuracy, or RMSE and R² (validation, then test)."""
    if objective.endswith("_accuracy"):
        return ["valid_accuracy", "test_accuracy"]
    if objective.endswith("_rmse"):
        return ["valid_rmse", "valid_r2", "test_rmse", "test_r2"]
    return [objective, objective.replace("valid_", "test_", 1)]


def comparison_lines(baseline: JSONDict | None, best: Any, objective: str) -> list[str]:
    """Lines for the terminal: the searched model, the baseline, and who is ahead on each split."""
    if not baseline:
        return []
    names = metric_names(objective)

    def shown(metrics: dict[str, Any]) -> str:
        return "  ".join(f"{n} {_fmt(metrics.get(n))}" for n in names if metrics.get(n) is not None)

    lines = []
    if best is not None:
        kind = str((best.info or {}).get("kind") or "search")
        what = f"trial {best.number}" + ("" if kind == "search" else f" ({kind})")
        lines.append(f"final model, {what}: {shown(best.metrics)}")
    lines.append(f"baseline {baseline['model']} ({baseline.get('settings', 'defaults')}): {shown(baseline)}  "
                 f"(fit {float(baseline.get('fit_s', 0.0)):.1f}s)")
    if best is not None:
        verdicts = []
        higher = not objective.endswith(("_rmse", "_loss", "_perplexity"))
        for split in ("valid", "test"):
            name = objective.replace("valid_", f"{split}_", 1)
            mine, theirs = best.metrics.get(name), baseline.get(name)
            if mine is None or theirs is None:
                continue
            diff = (mine - theirs) if higher else (theirs - mine)
            size = f"{100 * diff:+.2f} points" if objective.endswith("_accuracy") else f"{diff:+.6g}"
            verdicts.append(f"{split} {'ahead' if diff > 0 else 'tied' if diff == 0 else 'behind'} ({size})")
        if verdicts:
            lines.append("search vs baseline: " + ", ".join(verdicts))
    return lines


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4f}" if abs(float(value)) < 1000 else f"{float(value):.1f}"
