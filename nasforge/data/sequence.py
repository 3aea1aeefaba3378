"""Sequence classification data: `.ts`, `.npz` or long-format CSV cases -> padded, masked, normalised arrays.

A split's `x` is (cases, steps, channels + 1) float32: the cases padded with zeros to the longest
training case, and a last channel that is 1 on real steps and 0 on padding, so a model (and an exported
file) needs no second input to mask. Each channel is normalised by the mean and std of the real training
steps only; the validation split is stratified by class; `test_file` or the archive's own test part is
kept as the test split.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nasforge.core.errors import ConfigError, DataError
from nasforge.data.base import CLASSIFICATION, PAD_LABEL, Dataset, DataSpec, Split
from nasforge.data.sequence_files import RawSequences, read_sequences
from nasforge.data.tabular import check_split_options, split_indices

FORMAT = "nasforge.sequence"
VERSION = 1


class SequencePreprocessor:
    """Per-channel mean/std of real training steps, the padded length and the class names."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], length: int,
                 class_names: Sequence[str]) -> None:
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        self.length = int(length)
        self.class_names = tuple(str(c) for c in class_names)

    @property
    def channels(self) -> int:
        return int(self.mean.shape[0])

    @staticmethod
    def fit(raw: RawSequences, class_names: Sequence[str]) -> SequencePreprocessor:
        steps = np.concatenate(raw.cases, axis=0)
        mean = np.nanmean(steps, axis=0) if steps.size else np.zeros(raw.channels)
        std = np.nanstd(steps, axis=0) if steps.size else np.ones(raw.channels)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        return SequencePreprocessor(mean.tolist(), std.tolist(), max(len(c) for c in raw.cases), class_names)

    def transform(self, cases: Sequence[np.ndarray], *, source: str = "input") -> np.ndarray:
        """Cases of (steps, channels) -> (cases, length, channels + 1); longer cases keep their last steps."""
        out = np.zeros((len(cases), self.length, self.channels + 1), dtype=np.float32)
        for i, case in enumerate(cases):
            case = np.asarray(case, dtype=np.float64)
            if case.ndim == 1:
                case = case[:, None]
            if case.ndim != 2 or case.shape[1] != self.channels:
                raise DataError(f"{source}: case {i} has shape {case.shape}; the model expects "
                                f"(steps, {self.channels}) channels")
            case = case[-self.length:]
            normal = np.nan_to_num((case - self.mean) / self.std, nan=0.0)  # a missing value sits at the mean
            out[i, : len(case), : self.channels] = normal
            out[i, : len(case), self.channels] = 1.0
        return out

    def transform_labels(self, step_labels: Sequence[np.ndarray], index: Mapping[str, int]) -> np.ndarray:
        """Per-step label texts -> (cases, length) int64 class indices, PAD_LABEL on padding; cut like `transform`."""
        out = np.full((len(step_labels), self.length), PAD_LABEL, dtype=np.int64)
        for i, labels in enumerate(step_labels):
            kept = list(labels)[-self.length:]
            out[i, : len(kept)] = [index[v] for v in kept]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "mean": self.mean.tolist(), "std": self.std.tolist(),
                "length": self.length, "class_names": list(self.class_names)}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> SequencePreprocessor:
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise DataError(f"not a {FORMAT} version {VERSION} preprocessor")
        return SequencePreprocessor(data["mean"], data["std"], data["length"], data["class_names"])


def _check_text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what} must be a column name, got {value!r}")
    return value


class SequenceProvider:
    """A `.ts` file (and its `test_file`), an `.npz` with x_train/y_train (x_test/y_test), or a long CSV."""

    def __init__(self, path: str | os.PathLike[str], *, test_file: str | None = None, valid_fraction: float = 0.2,
                 test_fraction: float = 0.0, seed: int = 0, id_column: str = "id", time_column: str | None = None,
                 label: str = "label", sep: str | None = None, step_labels: bool = False) -> None:
        check_split_options(valid_fraction, test_fraction, seed)
        if not isinstance(step_labels, bool):
            raise ConfigError(f"step_labels must be true or false, got {step_labels!r}")
        self.path = os.path.abspath(os.fspath(path))
        if not os.path.isfile(self.path):
            raise DataError(f"{path}: file not found")
        self.test_file = os.path.abspath(test_file) if test_file else None
        if self.test_file and not os.path.isfile(self.test_file):
            raise DataError(f"{test_file}: file not found (test_file)")
        if self.test_file and test_fraction > 0:
            raise ConfigError("give test_file or test_fraction, not both")
        self.valid_fraction = float(valid_fraction)
        self.test_fraction = float(test_fraction)
        self.seed = int(seed)
        self.id_column = _check_text(id_column, "id_column")
        self.time_column = None if time_column is None else _check_text(time_column, "time_column")
        self.label = _check_text(label, "label")
        self.sep = sep
        self.step_labels = step_labels
        for file in (self.path, self.test_file):
            if step_labels and file and file.lower().endswith(".ts"):
                raise ConfigError(f"{file}: a .ts file carries one label per case; per-step labels "
                                  "(step_labels=true) need an .npz with y of shape (cases, steps) or a long CSV")

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"kind": "sequence", "path": self.path, "test_file": self.test_file,
                "valid_fraction": self.valid_fraction, "test_fraction": self.test_fraction, "seed": self.seed,
                "id_column": self.id_column, "time_column": self.time_column, "label": self.label, "sep": self.sep}
        if self.step_labels:  # only when set, so the configs (and stored studies) of case labels are unchanged
            config["step_labels"] = True
        return config

    def _read(self, path: str, part: str) -> RawSequences | None:
        csv_options = {"id_column": self.id_column, "time_column": self.time_column, "label": self.label,
                       "sep": self.sep, "step_labels": self.step_labels}
        return read_sequences(path, part, **csv_options)

    def load(self) -> Dataset:
        train = self._read(self.path, "train")
        assert train is not None
        test = self._read(self.test_file, "train") if self.test_file else self._read(self.path, "test")
        if test is not None and self.test_fraction > 0:
            raise ConfigError(f"{self.path}: the data has its own test part; test_fraction does not apply")
        if self.step_labels and not train.per_step:
            raise DataError(f"{self.path}: step_labels=true but the labels are one per case (an .npz needs y of "
                            "shape (cases, steps))")
        return sequence_dataset(train, test, source=self.path, test_source=self.test_file or self.path,
                                valid_fraction=self.valid_fraction, test_fraction=self.test_fraction,
                                seed=self.seed, info=self.config())


def sequence_dataset(train: RawSequences, test: RawSequences | None, *, source: str, test_source: str,
                     valid_fraction: float, test_fraction: float, seed: int, info: dict[str, Any]) -> Dataset:
    """Raw cases -> the padded, masked, normalised Dataset: a stratified valid (and test) split of `train`,
    the preprocessor fitted on the training split only; `test` (when given) is kept whole as the test split."""
    if test is not None and test.channels != train.channels:
        raise DataError(f"{test_source}: test cases have {test.channels} channel(s) but "
                        f"training cases {train.channels}")
    if test is not None and test.per_step != train.per_step:
        raise DataError(f"{test_source}: test cases have one label per {'step' if test.per_step else 'case'} but "
                        f"training cases one per {'step' if train.per_step else 'case'}")
    if train.per_step:
        return _step_dataset(train, test, source=source, test_source=test_source, valid_fraction=valid_fraction,
                             test_fraction=test_fraction, seed=seed, info=info)
    classes = list(train.classes) or sorted(set(train.labels), key=_label_order)
    index = {name: i for i, name in enumerate(classes)}
    labels = np.asarray([index[v] for v in train.labels], dtype=np.int64)
    if test is not None:
        unknown = sorted(set(test.labels) - set(index))
        if unknown:
            raise DataError(f"{test_source}: test class(es) {', '.join(unknown[:5])} are not in the training data")
    train_idx, valid_idx, test_idx = split_indices(len(labels), labels=labels, valid_fraction=valid_fraction,
                                                   test_fraction=test_fraction, seed=seed, source=source)
    fit_part = RawSequences([train.cases[i] for i in train_idx], [train.labels[i] for i in train_idx])
    if np.unique(labels[train_idx]).size < 2:
        raise DataError(f"{source}: the training split has fewer than two classes")
    pre = SequencePreprocessor.fit(fit_part, classes)
    splits = {"train": Split(pre.transform(fit_part.cases, source=source), labels[train_idx]),
              "valid": Split(pre.transform([train.cases[i] for i in valid_idx], source=source),
                             labels[valid_idx])}
    if test is not None:
        splits["test"] = Split(pre.transform(test.cases, source=test_source),
                               np.asarray([index[v] for v in test.labels], dtype=np.int64))
    elif test_fraction > 0:
        splits["test"] = Split(pre.transform([train.cases[i] for i in test_idx], source=source), labels[test_idx])
    spec = DataSpec(CLASSIFICATION, (pre.length, pre.channels + 1), len(classes), class_names=tuple(classes))
    info = dict(info)
    info["rows"] = {part: len(split) for part, split in splits.items()}
    info["task"] = CLASSIFICATION
    return Dataset(spec, splits["train"], splits["valid"], splits.get("test"), preprocessor=pre, source=info)


def _step_dataset(train: RawSequences, test: RawSequences | None, *, source: str, test_source: str,
                  valid_fraction: float, test_fraction: float, seed: int, info: dict[str, Any]) -> Dataset:
    """One label per step: y is (cases, length) with PAD_LABEL on padding; cases split at random (a case has
    many classes, so no stratification)."""
    assert train.step_labels is not None
    classes = list(train.classes) or sorted({str(v) for s in train.step_labels for v in s}, key=_label_order)
    index = {name: i for i, name in enumerate(classes)}
    if test is not None:
        assert test.step_labels is not None
        unknown = sorted({str(v) for s in test.step_labels for v in s} - set(index))
        if unknown:
            raise DataError(f"{test_source}: test class(es) {', '.join(unknown[:5])} are not in the training data")
    train_idx, valid_idx, test_idx = split_indices(len(train.cases), labels=None, valid_fraction=valid_fraction,
                                                   test_fraction=test_fraction, seed=seed, source=source)
    fit_part = RawSequences([train.cases[i] for i in train_idx], [],
                            step_labels=[train.step_labels[i] for i in train_idx])
    assert fit_part.step_labels is not None
    if len({str(v) for s in fit_part.step_labels for v in s}) < 2:
        raise DataError(f"{source}: the training split has fewer than two classes")
    pre = SequencePreprocessor.fit(fit_part, classes)

    def split(raw_cases: list[np.ndarray], labels: list[np.ndarray], where: str) -> Split:
        return Split(pre.transform(raw_cases, source=where), pre.transform_labels(labels, index))

    splits = {"train": split(fit_part.cases, fit_part.step_labels, source),
              "valid": split([train.cases[i] for i in valid_idx], [train.step_labels[i] for i in valid_idx], source)}
    if test is not None:
        assert test.step_labels is not None
        splits["test"] = split(test.cases, test.step_labels, test_source)
    elif test_fraction > 0:
        splits["test"] = split([train.cases[i] for i in test_idx], [train.step_labels[i] for i in test_idx], source)
    spec = DataSpec(CLASSIFICATION, (pre.length, pre.channels + 1), len(classes), class_names=tuple(classes),
                    per_step=True)
    info = dict(info)
    info["rows"] = {part: len(s) for part, s in splits.items()}
    info["task"] = CLASSIFICATION
    return Dataset(spec, splits["train"], splits["valid"], splits.get("test"), preprocessor=pre, source=info)


def _label_order(label: str) -> tuple[int, float | str]:
    """Numeric labels sort as numbers (2 before 10), others as text."""
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)
