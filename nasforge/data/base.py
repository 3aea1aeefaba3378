"""The provider interface every data source implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

CLASSIFICATION = "classification"
REGRESSION = "regression"
# Next-token prediction over a word stream: a split's `x` is the token ids (n,) and `y` the next ids (n,);
# the model maps (batch, T) ids to (batch, T, vocab) logits, and carries its recurrent state across windows
# through `run(ids, state) -> (logits, state)` or a forward that returns `(logits, state)`.
LANGUAGE_MODEL = "language_model"
TASKS = (CLASSIFICATION, REGRESSION)  # what tabular files can hold; LANGUAGE_MODEL comes from text corpora


@dataclass(frozen=True)
class DataSpec:
    """What a builder needs to know to size a network's input and output."""

    task: str
    input_shape: tuple[int, ...]
    num_outputs: int
    class_names: tuple[str, ...] = ()
    feature_names: tuple[str, ...] = ()
    # Per feature of a table: "numeric" (a standardised number), "indicator" (its missing flag) or
    # "category:<column>" (one one-hot slot of that column). Empty: every feature is a plain number.
    feature_kinds: tuple[str, ...] = ()
    # Sequence labelling (one class per step): y is (cases, steps) with PAD_LABEL on padded steps, and the
    # network answers (batch, steps, classes); losses and accuracy count real steps only.
    per_step: bool = False


PAD_LABEL = -100  # torch's cross-entropy ignore_index: a padded step's label, left out of loss and accuracy


@dataclass
class Split:
    """Model-ready arrays: float32 features, int64 class indices or float32 regression targets."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Dataset:
    """A loaded provider: its spec, its splits (test may be absent), and how it was made."""

    spec: DataSpec
    train: Split
    valid: Split
    test: Split | None = None
    preprocessor: Any = None  # has transform(frame) -> x and to_json(); None for array data
    source: dict[str, Any] = field(default_factory=dict)
    # Raw rows (label included) of a test split carved from the training file, so the exact
    # held-out rows can be written out and scored later with `nasforge predict --evaluate`.
    held_out_rows: Any = None


def stratified_order(labels: np.ndarray | None, rows: int, seed: int) -> np.ndarray:
    """A seeded row order whose every prefix keeps the class shares (as near as counts allow).

    Taking its first k rows gives a stratified subset, and the subsets for growing k are nested, so a
    low-fidelity trial (a data fraction) sees a part of what a higher one sees, and classes stay balanced.
    """
    rng = np.random.default_rng(seed)
    if labels is None:
        return rng.permutation(rows)
    labels = np.asarray(labels).reshape(-1)
    _, inverse = np.unique(labels, return_inverse=True)
    # rank within class (shuffled), scaled by the class size: row j of a class of n sits at (j + u) / n
    order = np.lexsort((rng.random(rows), inverse))
    counts = np.bincount(inverse)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(rows, dtype=np.float64)
    rank[order] = np.arange(rows) - starts[inverse[order]]
    position = (rank + rng.random(rows)) / counts[inverse]
    return np.argsort(position, kind="stable")


def stratified_subset(labels: np.ndarray | None, rows: int, count: int, seed: int) -> np.ndarray:
    """Sorted indices of `count` rows: the first `count` of `stratified_order` (all rows if count >= rows)."""
    if count >= rows:
        return np.arange(rows)
    return np.sort(stratified_order(labels, rows, seed)[:max(0, count)])


class DataProvider(Protocol):
    def load(self) -> Dataset: ...

    def config(self) -> dict[str, Any]:
        """JSON arguments that rebuild this provider in a worker process."""
        ...
