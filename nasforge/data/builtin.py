"""scikit-learn's bundled datasets (no downloads) as providers, for demos, tests and quick checks.

They go through the same LabelEncoder, split and TabularPreprocessor as a CSV file, so a model
found on `builtin:iris` predicts on `write_csv("iris", ...)`'s file exactly as on the original.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from nasforge.core.errors import ConfigError, DataError
from nasforge.data.base import CLASSIFICATION, REGRESSION, Dataset
from nasforge.data.tabular import LabelEncoder, check_split_options, make_dataset, split_indices

PREFIX = "builtin:"
LABEL = "target"
# name -> (scikit-learn loader, task)
BUILTINS: dict[str, tuple[str, str]] = {
    "breast_cancer": ("load_breast_cancer", CLASSIFICATION),
    "diabetes": ("load_diabetes", REGRESSION),
    "digits": ("load_digits", CLASSIFICATION),
    "iris": ("load_iris", CLASSIFICATION),
    "wine": ("load_wine", CLASSIFICATION),
}


def available() -> list[str]:
    return sorted(BUILTINS)


def builtin_name(name: str) -> str:
    """`iris` or `builtin:iris` -> `iris`; an unknown name is a DataError listing the known ones."""
    bare = name[len(PREFIX):] if name.startswith(PREFIX) else name
    bare = bare.strip().lower().replace("-", "_")
    if bare not in BUILTINS:
        raise DataError(f"unknown builtin dataset {name!r}; available: "
                        f"{', '.join(PREFIX + n for n in available())}")
    return bare


def builtin_frame(name: str) -> tuple[pd.DataFrame, str]:
    """The whole dataset as one table (features by their scikit-learn names, then `target`) and its task.

    Class labels are the scikit-learn target names (e.g. `setosa`), so the frame reads like a CSV file.
    """
    from sklearn import datasets

    bare = builtin_name(name)
    loader, task = BUILTINS[bare]
    bunch = getattr(datasets, loader)()
    frame = pd.DataFrame(np.asarray(bunch.data, dtype=np.float64), columns=[str(n) for n in bunch.feature_names])
    if task == CLASSIFICATION:
        names = np.asarray([str(n) for n in bunch.target_names], dtype=object)
        frame[LABEL] = names[np.asarray(bunch.target, dtype=np.int64)]
    else:
        frame[LABEL] = np.asarray(bunch.target, dtype=np.float64)
    return frame, task


def write_csv(name: str, path: str | os.PathLike[str], *, include_label: bool = True) -> str:
    """Export a builtin dataset as a file; `.tsv` gets tabs, `.gz` gzip; returns the absolute path."""
    frame, _ = builtin_frame(name)
    if not include_label:
        frame = frame.drop(columns=[LABEL])
    target = os.path.abspath(path)
    plain = target.lower().removesuffix(".gz")
    sep = "\t" if plain.endswith((".tsv", ".tab")) else ","
    frame.to_csv(target, sep=sep, index=False, compression="gzip" if target.lower().endswith(".gz") else None)
    return target


class BuiltinProvider:
    """A bundled scikit-learn dataset, split (stratified for classification) like a CSV file."""

    def __init__(self, name: str, *, valid_fraction: float = 0.2, test_fraction: float = 0.0,
                 seed: int = 0) -> None:
        if not isinstance(name, str):
            raise ConfigError(f"builtin dataset name must be text, got {name!r}")
        self.name = builtin_name(name)
        check_split_options(valid_fraction, test_fraction, seed)
        self.valid_fraction = float(valid_fraction)
        self.test_fraction = float(test_fraction)
        self.seed = int(seed)

    def config(self) -> dict[str, Any]:
        return {"kind": "builtin", "name": self.name, "valid_fraction": self.valid_fraction,
                "test_fraction": self.test_fraction, "seed": self.seed}

    def load(self) -> Dataset:
        frame, task = builtin_frame(self.name)
        source_name = PREFIX + self.name
        classes: list[str] | None = None
        if task == CLASSIFICATION:
            encoder = LabelEncoder().fit(frame[LABEL])
            classes = list(encoder.classes)
            y = encoder.transform(frame[LABEL], source=source_name, column=LABEL)
        else:
            y = frame[LABEL].to_numpy(dtype=np.float32)
        train, valid, test = split_indices(len(frame), labels=y if task == CLASSIFICATION else None,
                                           valid_fraction=self.valid_fraction,
                                           test_fraction=self.test_fraction, seed=self.seed, source=source_name)
        features = frame.drop(columns=[LABEL])
        parts = {"train": train, "valid": valid} | ({"test": test} if self.test_fraction > 0 else {})
        source = self.config() | {"label_column": LABEL, "task": task, "columns": [str(c) for c in frame.columns]}
        dataset = make_dataset({k: features.iloc[idx] for k, idx in parts.items()},
                               {k: y[idx] for k, idx in parts.items()}, task=task, classes=classes, label=LABEL,
                               file_columns=list(frame.columns), source=source, name=source_name)
        if "test" in parts:
            dataset.held_out_rows = frame.iloc[test].reset_index(drop=True)
        return dataset
