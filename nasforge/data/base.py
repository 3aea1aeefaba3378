"""The provider interface every data source implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)


@dataclass(frozen=True)
class DataSpec:
    """What a builder needs to know to size a network's input and output."""

    task: str
    input_shape: tuple[int, ...]
    num_outputs: int
    class_names: tuple[str, ...] = ()
    feature_names: tuple[str, ...] = ()


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


class DataProvider(Protocol):
    def load(self) -> Dataset: ...

    def config(self) -> dict[str, Any]:
        """JSON arguments that rebuild this provider in a worker process."""
        ...
