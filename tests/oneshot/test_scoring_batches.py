"""One-shot scoring normalises by each batch's statistics, so its batches must mix the classes.

A class-sorted dataset (the shared CIFAR-10 subset is one) cut into consecutive batches gives batches of
one or two classes; batch norm on such a batch removes the very signal that tells the classes apart, and
SMASH's ranking and ENAS's and DARTS's validation scores collapse. These tests sort a dataset by class
and check every method scores on mixed batches.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasforge.data.base import Dataset, Split
from nasforge.data.loader import data_config, load_dataset
from nasforge.oneshot.darts import EVAL_BATCH, ImageTask
from nasforge.oneshot.enas import ENAS
from nasforge.oneshot.smash import SMASH
from nasforge.spaces.nb201 import NB201Space

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sorted_digits() -> Dataset:
    data = load_dataset(data_config("builtin:digits", as_images=True))
    order = np.argsort(data.valid.y, kind="stable")
    valid = Split(data.valid.x[order], data.valid.y[order])
    assert len(set(valid.y[:len(valid.y) // 10].tolist())) <= 2  # consecutive rows: one or two classes
    return Dataset(data.spec, data.train, valid, data.test)


def classes_per_batch(labels: np.ndarray, batch: int) -> list[int]:
    return [len(set(labels[s:s + batch].tolist())) for s in range(0, len(labels) - batch + 1, batch)]


def test_darts_validation_batches_mix_the_classes(sorted_digits: Dataset) -> None:
    task = ImageTask(sorted_digits, torch.device("cpu"), batch_size=16, data_fraction=1.0, max_valid=None, seed=0)
    labels = task.valid_y.numpy()
    assert sorted(labels.tolist()) == sorted(sorted_digits.valid.y.tolist())  # every row, each once
    assert min(classes_per_batch(labels, min(EVAL_BATCH, 100))) >= 9


def test_darts_max_valid_keeps_a_mixed_subset(sorted_digits: Dataset) -> None:
    task = ImageTask(sorted_digits, torch.device("cpu"), batch_size=16, data_fraction=1.0, max_valid=60, seed=0)
    assert len(task.valid_y) == 60
    assert len(set(task.valid_y[:30].tolist())) >= 9


def test_enas_evaluation_batches_mix_the_classes(sorted_digits: Dataset) -> None:
    child = ENAS(batch_size=32).make_child(NB201Space(cells_per_stage=1, channels=4), sorted_digits,
                                           torch.device("cpu"))
    order = child.valid_order.numpy()  # type: ignore[attr-defined]
    assert sorted(order.tolist()) == list(range(len(sorted_digits.valid.y)))
    assert min(classes_per_batch(sorted_digits.valid.y[order], 32)) >= 9


def test_smash_scoring_rows_mix_the_classes(sorted_digits: Dataset) -> None:
    method = SMASH(valid_batches=3, valid_batch_size=40)
    rows = method.scoring_rows(sorted_digits, seed=0)
    assert len(rows) == len(set(rows.tolist())) == 120
    assert min(classes_per_batch(sorted_digits.valid.y[rows], 40)) >= 9
