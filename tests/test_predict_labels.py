"""`predict()` gives class labels back in the training label's type: integers for a 0/1 column, not '0'/'1'."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import nasforge
from nasforge.export.runtime import class_values


def test_class_values_read_back_integer_and_boolean_labels_and_leave_texts_alone() -> None:
    assert class_values(("0", "1")).dtype == np.int64 and class_values(("0", "1")).tolist() == [0, 1]
    assert class_values(("-3", "12")).tolist() == [-3, 12]
    assert class_values(("False", "True")).tolist() == [False, True]
    for texts in (("setosa", "virginica"), ("007", "1"), ("0.5", "1"), ("1", "b")):
        values = class_values(texts)
        assert values.dtype == object and values.tolist() == list(texts)


def test_a_study_trained_on_integer_labels_predicts_integers(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    rows = "\n".join(f"{int(a > 0)},{a:.4f},{b:.4f},{c:.4f}" for a, b, c in x)
    (tmp_path / "train.csv").write_text("target,a,b,c\n" + rows + "\n")
    study = nasforge.search(str(tmp_path / "train.csv"), label="target", trials=1, epochs=1, workers=1,
                            study="ints", storage=f"sqlite:///{tmp_path / 'db.sqlite'}", baseline=False,
                            root=str(tmp_path / "art"))
    labels = study.predict(str(tmp_path / "train.csv"))
    assert labels.dtype == np.int64 and set(labels.tolist()) <= {0, 1}
