"""Tabular preprocessing shared by every table source (CSV files, scikit-learn's bundled sets).

Everything learned here is learned from the training split only and stored as plain JSON, so a
checkpoint or a database row carries exactly what prediction on a new file needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from nasforge.core.errors import ConfigError, DataError
from nasforge.data.base import CLASSIFICATION, REGRESSION, TASKS, Dataset, DataSpec, Split

DEFAULT_MAX_CATEGORIES = 32
FORMAT = "nasforge.tabular"
VERSION = 1
OTHER = "<other>"
MISSING = "<missing>"
# A feature value beyond this (inf, -inf, 1e308, 1e400) is cleaned as missing: float32's largest finite value.
FEATURE_LIMIT = float(np.finfo(np.float32).max)

# Task inference: an integer label with at most this many values is a class label ...
SMALL_CLASS_COUNT = 20
# ... and so is one coded 0..k-1 or 1..k with up to this many classes (letter: 26, 1..26).
CODED_CLASS_COUNT = 100


# ----------------------------------------------------------------------------- values


def category_text(value: Any) -> str:
    """One spelling per category, so `1`, `1.0` and `"1"` read from different files are one category."""
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value).strip()


def category_strings(column: pd.Series) -> pd.Series:
    """The column as category texts (object dtype), NaN where missing; normalises each distinct value once."""
    missing = column.isna().to_numpy()
    present = column[~missing]
    mapping = {value: category_text(value) for value in pd.unique(present)}
    out = pd.Series(np.full(len(column), np.nan, dtype=object), index=column.index)
    if len(present):
        out[~missing] = present.map(mapping).to_numpy(dtype=object)
    return out


def is_numeric_column(column: pd.Series) -> bool:
    """Numbers are standardised; booleans are categories (two one-hot slots say more than a 0/1 z-score)."""
    return bool(ptypes.is_numeric_dtype(column.dtype) and not ptypes.is_bool_dtype(column.dtype))


def numeric_values(column: pd.Series, *, name: str, source: str) -> np.ndarray:
    """float64 values with NaN for missing, infinite and out-of-range ones (beyond float32, which the network
    reads and which no standardisation of such a value survives); text that is not a number is an error."""
    if ptypes.is_bool_dtype(column.dtype):
        values = column.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
    elif ptypes.is_numeric_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        coerced = pd.to_numeric(column, errors="coerce")
        bad = coerced.isna().to_numpy() & column.notna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{source}: column {name!r} must be numeric but has {column.iloc[row]!r} "
                            f"(data row {row + 1})")
        values = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    values = np.array(values, dtype=np.float64, copy=True)
    with np.errstate(invalid="ignore"):
        values[~(np.abs(values) <= FEATURE_LIMIT)] = np.nan
    return values


# ----------------------------------------------------------------------------- labels


def infer_task(labels: pd.Series) -> str:
    """Text or booleans: classes. Integers: classes when few, or coded 0..k-1 / 1..k; else regression."""
    present = labels.dropna()
    if ptypes.is_bool_dtype(present.dtype) or not ptypes.is_numeric_dtype(present.dtype):
        return CLASSIFICATION
    values = present.to_numpy(dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0 or not np.all(values == np.round(values)):
        return REGRESSION
    distinct = np.unique(values)
    if distinct.size <= SMALL_CLASS_COUNT:
        return CLASSIFICATION
    low = distinct[0]
    coded = low in (0.0, 1.0) and distinct[-1] - low == distinct.size - 1
    return CLASSIFICATION if coded and distinct.size <= CODED_CLASS_COUNT else REGRESSION


def _class_order(names: Iterable[str]) -> list[str]:
    """Numeric-looking classes sort by value (2 before 10), others as text: stable across files."""
    names = list(names)
    try:
        return sorted(names, key=lambda text: (float(text), text))
    except ValueError:
        return sorted(names)


class LabelEncoder:
    """Class labels (text or numbers) to int64 indices; `class_names` are the texts in index order."""

    def __init__(self, classes: Sequence[str] = ()) -> None:
        self.classes: tuple[str, ...] = tuple(str(c) for c in classes)
        self._index = {name: i for i, name in enumerate(self.classes)}

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.classes

    def fit(self, labels: pd.Series | Sequence[Any]) -> LabelEncoder:
        texts = category_strings(pd.Series(labels)).dropna()
        self.classes = tuple(_class_order(set(texts)))
        self._index = {name: i for i, name in enumerate(self.classes)}
        return self

    def transform(self, labels: pd.Series | Sequence[Any], *, source: str = "labels",
                  column: str = "label") -> np.ndarray:
        texts = category_strings(pd.Series(labels))
        codes = texts.map(self._index)
        bad = codes.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            value = texts.iloc[row]
            problem = "is missing" if pd.isna(value) else f"has class {value!r} not seen in training"
            raise DataError(f"{source}: label column {column!r} {problem} (data row {row + 1})")
        return codes.to_numpy(dtype=np.int64)

    def inverse_transform(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[np.asarray(indices, dtype=np.int64)]

    def to_json(self) -> dict[str, Any]:
        return {"classes": list(self.classes)}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> LabelEncoder:
        return LabelEncoder(data["classes"])


def regression_targets(labels: pd.Series, *, source: str, column: str) -> np.ndarray:
    """float32 targets; text or missing values are errors naming the column."""
    if not ptypes.is_numeric_dtype(labels.dtype) or ptypes.is_bool_dtype(labels.dtype):
        coerced = pd.to_numeric(labels, errors="coerce")
        bad = coerced.isna().to_numpy() & labels.notna().to_numpy()
        if bad.any():
            example = labels.iloc[int(np.flatnonzero(bad)[0])]
            raise DataError(f"{source}: label column {column!r} is not numeric (e.g. {example!r}), "
                            "so it cannot be a regression target")
        labels = coerced
    values = labels.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(f"{source}: label column {column!r} has a missing or infinite value "
                        f"(data row {int(np.flatnonzero(bad)[0]) + 1})")
    return values.astype(np.float32)


# ----------------------------------------------------------------------------- features


class TabularPreprocessor:
    """Raw feature columns to a float32 matrix: numbers imputed and standardised, categories one-hot.

    Numeric column: median imputation, a `name:missing` indicator only if training had missing values,
    then (x - mean) / std with train statistics (std 0 -> 1). Other columns (text, bool): one slot per
    frequent category (at most `max_categories`), an `<other>` slot for the rest and for values first
    seen at prediction time, and a `<missing>` slot if training had missing values. `transform` selects
    columns by name, so their order in a new file does not matter and extra columns (the label, ids)
    are ignored. The label's task and classes ride along so one JSON object serves prediction.
    """

    def __init__(self, *, label: str | None = None, task: str | None = None,
                 classes: Sequence[str] | None = None, file_columns: Sequence[str] = (),
                 max_categories: int = DEFAULT_MAX_CATEGORIES) -> None:
        if max_categories < 1:
            raise ConfigError(f"max_categories must be at least 1, got {max_categories}")
        self.label = label
        self.task = task
        self.label_encoder = LabelEncoder(classes) if classes is not None else None
        self.file_columns: tuple[str, ...] = tuple(file_columns)
        self.max_categories = int(max_categories)
        self.columns: list[dict[str, Any]] = []

    # -- fitting ------------------------------------------------------------------------

    def fit(self, frame: pd.DataFrame, *, source: str = "training data") -> TabularPreprocessor:
        _check_unique_columns(frame, source)
        names = [str(c) for c in frame.columns if str(c) != self.label]
        if not names:
            raise DataError(f"{source}: no feature columns besides the label {self.label!r}")
        self.columns = []
        for name in names:
            column = frame[name]
            if is_numeric_column(column):
                self.columns.append(self._fit_numeric(name, column, source))
            else:
                self.columns.append(self._fit_categorical(name, column))
        if not self.file_columns:
            self.file_columns = tuple(str(c) for c in frame.columns)
        return self

    @staticmethod
    def _fit_numeric(name: str, column: pd.Series, source: str) -> dict[str, Any]:
        values = numeric_values(column, name=name, source=source)
        missing = np.isnan(values)
        if missing.all():
            raise DataError(f"{source}: column {name!r} is empty (all values missing)")
        median = float(np.median(values[~missing]))
        filled = np.where(missing, median, values)
        mean = float(filled.mean())
        std = float(filled.std())
        if not math.isfinite(std) or std <= 1e-12 * max(1.0, abs(mean)):
            std = 1.0
        return {"name": name, "kind": "numeric", "median": median, "mean": mean, "std": std,
                "indicator": bool(missing.any())}

    def _fit_categorical(self, name: str, column: pd.Series) -> dict[str, Any]:
        texts = category_strings(column)
        counts = texts.value_counts(dropna=True)
        ranked = sorted(counts.items(), key=lambda item: (-int(item[1]), str(item[0])))
        kept = [str(value) for value, _ in ranked[: self.max_categories]]
        return {"name": name, "kind": "categorical", "categories": kept,
                "missing": bool(texts.isna().any())}

    def fit_transform(self, frame: pd.DataFrame, *, source: str = "training data") -> np.ndarray:
        return self.fit(frame, source=source).transform(frame, source=source)

    # -- layout -------------------------------------------------------------------------

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The raw feature columns a file must have, in training order."""
        return tuple(spec["name"] for spec in self.columns)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """One name per output column: `age`, `age:missing`, `color=red`, `color=<other>`, ..."""
        names: list[str] = []
        for spec in self.columns:
            name = spec["name"]
            if spec["kind"] == "numeric":
                names.append(name)
                if spec["indicator"]:
                    names.append(f"{name}:missing")
            else:
                names.extend(f"{name}={value}" for value in spec["categories"])
                names.append(f"{name}={OTHER}")
                if spec["missing"]:
                    names.append(f"{name}={MISSING}")
        return tuple(names)

    @property
    def feature_kinds(self) -> tuple[str, ...]:
        """What each output column is (DataSpec.feature_kinds): numeric, indicator or category:<column>."""
        kinds: list[str] = []
        for spec in self.columns:
            if spec["kind"] == "numeric":
                kinds.append("numeric")
                if spec["indicator"]:
                    kinds.append("indicator")
            else:
                slots = len(spec["categories"]) + 1 + int(bool(spec["missing"]))
                kinds.extend([f"category:{spec['name']}"] * slots)
        return tuple(kinds)

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    # -- transforming -------------------------------------------------------------------

    def transform(self, frame: pd.DataFrame, *, source: str = "input") -> np.ndarray:
        """A (rows, num_features) float32 matrix; a missing feature column is a DataError naming it."""
        if not self.columns:
            raise RuntimeError("TabularPreprocessor.transform called before fit")
        _check_unique_columns(frame, source)
        present = {str(c) for c in frame.columns}
        absent = [name for name in self.input_columns if name not in present]
        if absent:
            listed = ", ".join(repr(n) for n in absent[:8]) + (" ..." if len(absent) > 8 else "")
            raise DataError(f"{source}: missing feature column(s) {listed} "
                            f"({len(absent)} of {len(self.columns)} expected)")
        frame = frame.rename(columns=str)
        rows = len(frame)
        out = np.zeros((rows, self.num_features), dtype=np.float32)
        offset = 0
        for spec in self.columns:
            column = frame[spec["name"]]
            if spec["kind"] == "numeric":
                values = numeric_values(column, name=spec["name"], source=source)
                missing = np.isnan(values)
                values[missing] = spec["median"]
                out[:, offset] = (values - spec["mean"]) / spec["std"]
                offset += 1
                if spec["indicator"]:
                    out[:, offset] = missing
                    offset += 1
            else:
                categories = spec["categories"]
                other = len(categories)
                texts = category_strings(column)
                mapped = texts.map({value: i for i, value in enumerate(categories)})
                codes = np.array(mapped.fillna(other).to_numpy(dtype=np.int64), copy=True)
                if spec["missing"]:
                    codes[texts.isna().to_numpy()] = other + 1
                out[np.arange(rows), offset + codes] = 1.0
                offset += other + 1 + int(spec["missing"])
        return out

    def encode_labels(self, frame: pd.DataFrame | pd.Series, *, source: str = "input") -> np.ndarray:
        """Targets for a labelled file (prediction with scoring): int64 classes or float32 values."""
        if self.label is None or self.task is None:
            raise DataError(f"{source}: this preprocessor has no label column")
        if isinstance(frame, pd.DataFrame):
            if self.label not in frame.columns:
                raise DataError(f"{source}: label column {self.label!r} not found")
            frame = frame[self.label]
        if self.task == CLASSIFICATION:
            assert self.label_encoder is not None
            return self.label_encoder.transform(frame, source=source, column=self.label)
        return regression_targets(frame, source=source, column=self.label)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.label_encoder.classes if self.label_encoder is not None else ()

    # -- persistence --------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (no NaN): what a checkpoint or a database row stores."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "label": self.label,
            "task": self.task,
            "classes": list(self.label_encoder.classes) if self.label_encoder is not None else None,
            "file_columns": list(self.file_columns),
            "max_categories": self.max_categories,
            "columns": [dict(spec) for spec in self.columns],
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> TabularPreprocessor:
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise DataError(f"not a {FORMAT} version {VERSION} preprocessor "
                            f"(format={data.get('format')!r}, version={data.get('version')!r})")
        pre = TabularPreprocessor(label=data.get("label"), task=data.get("task"), classes=data.get("classes"),
                                  file_columns=data.get("file_columns", ()),
                                  max_categories=int(data.get("max_categories", DEFAULT_MAX_CATEGORIES)))
        pre.columns = [dict(spec) for spec in data["columns"]]
        return pre


def _check_unique_columns(frame: pd.DataFrame, source: str) -> None:
    seen: set[str] = set()
    for name in (str(c) for c in frame.columns):
        if name in seen:
            raise DataError(f"{source}: duplicate column name {name!r}")
        seen.add(name)


# ----------------------------------------------------------------------------- splits


def check_split_options(valid_fraction: float, test_fraction: float, seed: int) -> None:
    """Option checks shared by every provider: a ConfigError names the option and the allowed range."""
    for name, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) < 1.0:
            raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")
    if float(valid_fraction) + float(test_fraction) >= 1.0:
        raise ConfigError(f"valid_fraction + test_fraction must be below 1, got "
                          f"{valid_fraction} + {test_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")


def _split_count(fraction: float, rows: int) -> int:
    return 0 if fraction <= 0 else max(1, round(fraction * rows))


def _allocate(ideal: np.ndarray, total: int, soft_cap: np.ndarray, hard_cap: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
    """Per-class counts summing to `total`, near `ideal` (largest remainders first), within the caps.

    The soft cap is tried first (it keeps a training row per class); the hard cap only fills what is left.
    """
    take = np.clip(np.floor(ideal).astype(np.int64), 0, soft_cap)
    tiebreak = rng.random(len(ideal))
    for cap in (soft_cap, hard_cap):
        need = total - int(take.sum())
        while need > 0:
            eligible = np.flatnonzero(cap - take > 0)
            if eligible.size == 0:
                break
            ranked = eligible[np.lexsort((tiebreak[eligible], -(ideal - take)[eligible]))]
            chosen = ranked[:need]
            take[chosen] += 1
            need -= len(chosen)
    return take


def split_indices(rows: int, *, labels: np.ndarray | None, valid_fraction: float, test_fraction: float,
                  seed: int, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint sorted (train, valid, test) row indices; stratified by `labels` when given.

    Each class keeps at least one training row where possible, so rare classes are not lost to the
    held-out splits; a held-out fraction above zero always gets at least one row.
    """
    n_test = _split_count(test_fraction, rows)
    n_valid = _split_count(valid_fraction, rows)
    if rows - n_test - n_valid < 2:
        need = next(n for n in range(2, 10**9)
                    if n - _split_count(test_fraction, n) - _split_count(valid_fraction, n) >= 2)
        raise DataError(f"{source}: only {rows} data row(s); need at least {need} for the splits "
                        f"(valid_fraction={valid_fraction}, test_fraction={test_fraction})")
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(rows)
        test, valid, train = order[:n_test], order[n_test:n_test + n_valid], order[n_test + n_valid:]
    else:
        _, inverse = np.unique(labels, return_inverse=True)
        counts = np.bincount(inverse)
        order = np.lexsort((rng.random(rows), inverse))  # grouped by class, shuffled within
        groups = np.split(order, np.cumsum(counts)[:-1])
        keep_one = np.maximum(counts - 1, 0)
        test_n = _allocate(counts * test_fraction, n_test, keep_one, counts, rng)
        valid_n = _allocate(counts * valid_fraction, n_valid, np.clip(keep_one - test_n, 0, None),
                            counts - test_n, rng)
        parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
        for group, t, v in zip(groups, test_n, valid_n):
            parts[0].append(group[t + v:])
            parts[1].append(group[t:t + v])
            parts[2].append(group[:t])
        train, valid, test = (np.concatenate(p) if p else np.empty(0, np.int64) for p in parts)
    return tuple(np.sort(part).astype(np.int64) for part in (train, valid, test))  # type: ignore[return-value]


# ----------------------------------------------------------------------------- datasets


def make_dataset(features: Mapping[str, pd.DataFrame], targets: Mapping[str, np.ndarray], *, task: str,
                 classes: Sequence[str] | None, label: str, file_columns: Sequence[str],
                 source: dict[str, Any], name: str, max_categories: int = DEFAULT_MAX_CATEGORIES,
                 part_names: Mapping[str, str] | None = None) -> Dataset:
    """Fit the preprocessor on `features["train"]` and turn every split into model-ready arrays.

    `features` has "train" and "valid" and maybe "test"; `targets` the matching encoded labels;
    `part_names` names a split's own file in error messages (default: "NAME (valid split)").
    """
    part_names = dict(part_names or {})
    if task not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    pre = TabularPreprocessor(label=label, task=task, classes=classes if task == CLASSIFICATION else None,
                              file_columns=file_columns, max_categories=max_categories)
    pre.fit(features["train"], source=f"{name} (training split)")
    splits: dict[str, Split] = {}
    for part, frame in features.items():
        x = pre.transform(frame, source=part_names.get(part, name if part == "train" else f"{name} ({part} split)"))
        y = targets[part].astype(np.int64 if task == CLASSIFICATION else np.float32)
        splits[part] = Split(x=x, y=y)
    if task == CLASSIFICATION:
        present = np.unique(splits["train"].y)
        if present.size < 2:
            raise DataError(f"{name}: the training split has only one class; need at least two")
    spec = DataSpec(task=task, input_shape=(pre.num_features,),
                    num_outputs=len(pre.class_names) if task == CLASSIFICATION else 1,
                    class_names=pre.class_names, feature_names=pre.feature_names, feature_kinds=pre.feature_kinds)
    source = dict(source)
    source["rows"] = {part: len(split) for part, split in splits.items()}
    return Dataset(spec=spec, train=splits["train"], valid=splits["valid"], test=splits.get("test"),
                   preprocessor=pre, source=source)
