"""The preprocessor, the label encoder, task inference and the split helper."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nasforge.core.errors import ConfigError, DataError
from nasforge.data.tabular import (
    LabelEncoder,
    TabularPreprocessor,
    check_split_options,
    infer_task,
    split_indices,
)


def _train_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "age": [20.0, 30.0, np.nan, 50.0, 40.0, 30.0],
        "height": [1, 2, 3, 4, 5, 6],
        "const": [7, 7, 7, 7, 7, 7],
        "color": ["red", "blue", "red", None, "green", "red"],
        "flag": [True, False, True, True, False, True],
        "y": ["a", "b", "a", "b", "a", "b"],
    })


def test_numeric_impute_indicator_and_standardize() -> None:
    pre = TabularPreprocessor(label="y").fit(_train_frame())
    x = pre.transform(_train_frame())
    names = pre.feature_names
    assert x.dtype == np.float32 and x.shape == (6, len(names))
    assert "age:missing" in names and "height:missing" not in names  # indicator only where training had NaN
    age = x[:, names.index("age")]
    stats = pre.columns[0]
    assert stats["median"] == 30.0 and age[2] == pytest.approx((30.0 - stats["mean"]) / stats["std"])
    assert x[:, names.index("age:missing")].tolist() == [0, 0, 1, 0, 0, 0]
    height = x[:, names.index("height")]
    assert height.mean() == pytest.approx(0.0, abs=1e-6) and height.std() == pytest.approx(1.0, abs=1e-5)
    assert np.all(x[:, names.index("const")] == 0.0)  # std 0 -> 1, no division by zero


def test_categorical_one_hot_with_other_and_missing() -> None:
    pre = TabularPreprocessor(label="y", max_categories=2).fit(_train_frame())
    names = pre.feature_names
    assert [n for n in names if n.startswith("color=")] == ["color=red", "color=blue", "color=<other>",
                                                           "color=<missing>"]
    assert [n for n in names if n.startswith("flag=")] == ["flag=True", "flag=False", "flag=<other>"]
    x = pre.transform(_train_frame())
    onehot = x[:, [names.index(n) for n in names if n.startswith("color=")]]
    assert onehot.sum(axis=1).tolist() == [1] * 6
    assert onehot[4].tolist() == [0, 0, 1, 0]  # green: beyond the cap -> other
    assert onehot[3].tolist() == [0, 0, 0, 1]  # None -> missing


def test_label_column_and_extra_columns_are_ignored_and_order_does_not_matter() -> None:
    train = _train_frame()
    pre = TabularPreprocessor(label="y").fit(train)
    shuffled = train[["y", "flag", "color", "const", "height", "age"]].assign(row_id=range(6))
    assert np.array_equal(pre.transform(shuffled), pre.transform(train))
    no_label = train.drop(columns=["y"])
    assert np.array_equal(pre.transform(no_label), pre.transform(train))


def test_unseen_category_and_text_numbers_at_predict_time() -> None:
    pre = TabularPreprocessor(label="y").fit(_train_frame())
    new = pd.DataFrame({"age": ["25", None], "height": [3, 3], "const": [7, 7], "color": ["purple", "red"],
                        "flag": [False, None]})
    x = pre.transform(new)
    names = pre.feature_names
    assert x[0, names.index("color=<other>")] == 1.0 and x[1, names.index("color=red")] == 1.0
    assert x[1, names.index("age:missing")] == 1.0
    assert x[1, names.index("flag=<other>")] == 1.0  # missing, never seen missing in training


def test_missing_columns_and_bad_numbers_are_data_errors() -> None:
    pre = TabularPreprocessor(label="y").fit(_train_frame())
    with pytest.raises(DataError, match=r"new\.csv: missing feature column\(s\) 'age', 'color'"):
        pre.transform(_train_frame().drop(columns=["age", "color"]), source="new.csv")
    bad = _train_frame().astype({"age": object})
    bad.loc[1, "age"] = "old"
    with pytest.raises(DataError, match="column 'age' must be numeric but has 'old'"):
        pre.transform(bad)


def test_all_missing_training_column_is_an_error() -> None:
    frame = pd.DataFrame({"a": [np.nan, np.nan], "b": [1.0, 2.0]})
    with pytest.raises(DataError, match=r"column 'a' is empty \(all values missing\)"):
        TabularPreprocessor().fit(frame)


def test_json_round_trip_gives_identical_transforms() -> None:
    pre = TabularPreprocessor(label="y", task="classification", classes=["a", "b"]).fit(_train_frame())
    text = json.dumps(pre.to_json(), allow_nan=False)
    back = TabularPreprocessor.from_json(json.loads(text))
    assert back.feature_names == pre.feature_names and back.file_columns == pre.file_columns
    new = _train_frame().iloc[::-1]
    assert np.array_equal(back.transform(new), pre.transform(new))
    assert back.encode_labels(new).tolist() == [1, 0, 1, 0, 1, 0]
    with pytest.raises(DataError, match=r"not a nasforge\.tabular"):
        TabularPreprocessor.from_json({"format": "other"})


def test_label_encoder_orders_and_maps() -> None:
    enc = LabelEncoder().fit(pd.Series([10, 2, 2, 1]))
    assert enc.class_names == ("1", "2", "10")  # numeric order, not text order
    assert enc.transform(pd.Series(["2", 10.0, 1])).tolist() == [1, 2, 0]  # one spelling per class
    assert enc.inverse_transform([2, 0]).tolist() == ["10", "1"]
    assert LabelEncoder().fit(["b", "a", "c"]).class_names == ("a", "b", "c")
    with pytest.raises(DataError, match="class 'z' not seen in training"):
        enc.transform(["z"], source="v.csv")
    assert LabelEncoder.from_json(enc.to_json()).classes == enc.classes


@pytest.mark.parametrize(("values", "task"), [
    (["a", "b"], "classification"),
    ([True, False], "classification"),
    ([0, 1, 1, 0], "classification"),
    ([1.0, 2.0, 3.0], "classification"),
    (list(range(1, 27)) * 3, "classification"),  # coded 1..k (letter)
    (list(range(17, 90)), "regression"),  # many integer values, not a 0/1-based code
    ([0.5, 1.5, 2.0], "regression"),
])
def test_infer_task(values: list, task: str) -> None:
    assert infer_task(pd.Series(values)) == task


def test_stratified_split_keeps_proportions_and_is_disjoint() -> None:
    labels = np.array([0] * 700 + [1] * 200 + [2] * 100)
    train, valid, test = split_indices(len(labels), labels=labels, valid_fraction=0.2, test_fraction=0.1,
                                       seed=3, source="x")
    assert (len(train), len(valid), len(test)) == (700, 200, 100)
    assert not (set(train) & set(valid)) and not (set(train) & set(test)) and not (set(valid) & set(test))
    assert len(set(train) | set(valid) | set(test)) == 1000
    for part in (train, valid, test):
        assert np.bincount(labels[part]).tolist() == (np.array([0.7, 0.2, 0.1]) * len(part)).round().tolist()
    again = split_indices(len(labels), labels=labels, valid_fraction=0.2, test_fraction=0.1, seed=3, source="x")
    assert all(np.array_equal(a, b) for a, b in zip((train, valid, test), again))


def test_rare_classes_stay_in_training() -> None:
    labels = np.array([0] * 20 + [1, 2])
    train, valid, _ = split_indices(len(labels), labels=labels, valid_fraction=0.3, test_fraction=0.0,
                                    seed=0, source="x")
    assert {1, 2} <= set(labels[train].tolist()) and len(valid) == round(0.3 * 22)


def test_too_few_rows_for_splits() -> None:
    with pytest.raises(DataError, match=r"f\.csv: only 3 data row\(s\); need at least \d+ for the splits"):
        split_indices(3, labels=None, valid_fraction=0.2, test_fraction=0.2, seed=0, source="f.csv")


@pytest.mark.parametrize(("valid", "test", "message"), [
    (1.0, 0.0, "valid_fraction must be a number in"),
    (-0.1, 0.0, "valid_fraction must be a number in"),
    (0.2, 1.5, "test_fraction must be a number in"),
    (0.6, 0.4, "valid_fraction \\+ test_fraction must be below 1"),
])
def test_split_option_checks(valid: float, test: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_split_options(valid, test, 0)
