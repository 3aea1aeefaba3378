"""`csv_data.Provider`: Model Search's CSV arguments mapped onto nasforge's CSV provider."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nasforge.core.errors import ConfigError, DataError


class Provider:
    """A CSV with the label at `label_index` and `logits_dimension` outputs (1 = regression).

    Unlike Model Search, string columns are used (one-hot encoded), missing values are handled,
    and validation comes from `validation_filename` or, without one, from a stratified split of
    the training file, never from the training rows themselves. `record_defaults` fixes the
    number of columns and is checked against the file.
    """

    def __init__(self, label_index: int, logits_dimension: int, record_defaults: Sequence[Any], filename: str,
                 validation_filename: str | None = None, field_delim: str | None = None,
                 test_filename: str | None = None, test_fraction: float = 0.0) -> None:
        if logits_dimension < 1:
            raise ConfigError(f"logits_dimension must be at least 1 (got {logits_dimension})")
        if not record_defaults:
            raise ConfigError("record_defaults must list one default per CSV column")
        if not -len(record_defaults) <= label_index < len(record_defaults):
            raise ConfigError(f"label_index {label_index} is out of range for {len(record_defaults)} columns")
        self.label_index = label_index
        self.logits_dimension = logits_dimension
        self.record_defaults = list(record_defaults)
        self.filename = filename
        self.validation_filename = validation_filename
        self.field_delim = field_delim
        self.test_filename = test_filename
        self.test_fraction = test_fraction

    @property
    def task(self) -> str:
        return "regression" if self.logits_dimension == 1 else "classification"

    def search_options(self) -> dict[str, Any]:
        """The `nasforge.search` options this provider stands for (checked against the file)."""
        from nasforge.data.loader import data_config, load_dataset

        options: dict[str, Any] = {"label": self.label_index, "task": self.task, "sep": self.field_delim,
                                   "valid_file": self.validation_filename, "test_file": self.test_filename,
                                   "test_fraction": self.test_fraction}
        dataset = load_dataset(data_config(self.filename, **options))
        columns = len(dataset.preprocessor.file_columns) if dataset.preprocessor is not None else None
        if columns is not None and columns != len(self.record_defaults):
            raise DataError(f"{self.filename}: {columns} columns, but record_defaults lists "
                            f"{len(self.record_defaults)}")
        if self.task == "classification" and dataset.spec.num_outputs > self.logits_dimension:
            raise DataError(f"{self.filename}: {dataset.spec.num_outputs} classes in the label column, more than "
                            f"logits_dimension={self.logits_dimension}")
        return options
