"""scikit-learn's bundled datasets, and their CSV export predicting like the original."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nasforge.core.errors import DataError
from nasforge.data.builtin import BuiltinProvider, available, write_csv
from nasforge.data.csv import CSVProvider, read_features_frame


@pytest.mark.parametrize(("name", "task", "inputs", "outputs"), [
    ("iris", "classification", 4, 3),
    ("wine", "classification", 13, 3),
    ("breast_cancer", "classification", 30, 2),
    ("digits", "classification", 64, 10),
    ("diabetes", "regression", 10, 1),
])
def test_builtin_datasets(name: str, task: str, inputs: int, outputs: int) -> None:
    data = BuiltinProvider(f"builtin:{name}", test_fraction=0.2, seed=1).load()
    assert data.spec.task == task and data.spec.input_shape == (inputs,) and data.spec.num_outputs == outputs
    assert data.test is not None and data.train.x.dtype == np.float32
    assert abs(float(data.train.x.mean())) < 0.05  # standardised on the training split
    if task == "classification":
        share = [np.bincount(s.y, minlength=outputs) / len(s) for s in (data.train, data.valid, data.test)]
        assert np.abs(share[0] - share[1]).max() < 0.05 and np.abs(share[0] - share[2]).max() < 0.05


def test_unknown_builtin_lists_available() -> None:
    with pytest.raises(DataError, match=r"unknown builtin dataset 'builtin:mnist'; available: .*builtin:iris"):
        BuiltinProvider("builtin:mnist")
    assert available() == ["breast_cancer", "cbf", "diabetes", "digits", "iris", "wine"]


def test_exported_csv_loads_and_transforms_identically(tmp_path: Path) -> None:
    original = BuiltinProvider("iris", seed=2).load()
    path = write_csv("iris", tmp_path / "iris.tsv.gz")
    from_file = CSVProvider(path, seed=2).load()
    assert from_file.spec == original.spec
    assert np.array_equal(from_file.train.x, original.train.x) and np.array_equal(from_file.valid.y, original.valid.y)
    features = write_csv("iris", tmp_path / "features.csv", include_label=False)
    pre = original.preprocessor
    frame = read_features_frame(features, file_columns=pre.file_columns, label=pre.label)
    assert pre.transform(frame).shape == (150, 4)
