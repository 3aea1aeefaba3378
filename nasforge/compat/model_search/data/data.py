"""`data.Provider`: Model Search's abstract data provider, subclassed for data that is not a CSV file.

Model Search's providers hand TensorFlow input functions to its trainer; nasforge's take raw arrays, so a
subclass implements `train()` (and optionally `valid()` and `test()`) returning `(X, y)`, as for
`nasforge.data.provider.Provider`, which this class is. `number_of_classes()` is Model Search's logits
dimension: 1 means regression, k > 1 means integer labels 0..k-1.
"""

from __future__ import annotations

from typing import Any

from nasforge.core.errors import ConfigError
from nasforge.data.base import Dataset
from nasforge.data.provider import Provider as _CoreProvider
from nasforge.data.provider import build_dataset


class Provider(_CoreProvider):
    """Subclass and implement `train()` (and `number_of_classes()` to fix the logits dimension)."""

    def number_of_classes(self) -> int | None:
        return None

    def num_outputs(self) -> int | None:
        count = self.number_of_classes()
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ConfigError(f"{self.name}.number_of_classes() must be a positive integer, got {count!r}")
        return count

    def load(self) -> Dataset:
        if self.task is None and self.number_of_classes() == 1:
            self.task = "regression"
        return build_dataset(self)

    def get_input_fn(self, *args: Any, **kwargs: Any) -> Any:
        raise ConfigError(f"{self.name}: nasforge reads train()/valid()/test() (X, y) arrays, not TensorFlow "
                          "input functions; implement train() instead of get_input_fn()")

    def get_serving_input_fn(self, *args: Any, **kwargs: Any) -> Any:
        raise ConfigError(f"{self.name}: nasforge exports with `nasforge export`; get_serving_input_fn() is not used")
