"""scikit-learn's bundled datasets (no downloads) as providers, for demos, tests and quick checks.

They go through the same LabelEncoder, split and TabularPreprocessor as a CSV file, so a model
found on `builtin:iris` predicts on `write_csv("iris", ...)`'s file exactly as on the original.
Sequence builtins (`builtin:cbf`, data/builtin_sequences.py) are generated and go through the
sequence provider's split and preprocessor instead.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from nasforge.core.errors import ConfigError, DataError
from nasforge.data.base import CLASSIFICATION, REGRESSION, Dataset
from nasforge.data.builtin_sequences import SEQUENCE_BUILTINS
from nasforge.data.sequence_files import RawSequences
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


# builtins that are pictures: (scikit-learn loader, pixel maximum), loadable as (1, H, W) images
IMAGE_BUILTINS: dict[str, tuple[str, float]] = {"digits": ("load_digits", 16.0)}


def available() -> list[str]:
    return sorted([*BUILTINS, *SEQUENCE_BUILTINS])


def builtin_name(name: str) -> str:
    """`iris` or `builtin:iris` -> `iris`; an unknown name is a DataError listing the known ones."""
    bare = name[len(PREFIX):] if name.startswith(PREFIX) else name
    bare = bare.strip().lower().replace("-", "_")
    if bare not in BUILTINS and bare not in SEQUENCE_BUILTINS:
        raise DataError(f"unknown builtin dataset {name!r}; available: "
                        f"{', '.join(PREFIX + n for n in available())}")
    return bare


def builtin_frame(name: str) -> tuple[pd.DataFrame, str]:
    """The whole dataset as one table (features by their scikit-learn names, then `target`) and its task.

    Class labels are the scikit-learn target names (e.g. `setosa`), so the frame reads like a CSV file.
    """
    from sklearn import datasets

    bare = builtin_name(name)
    if bare in SEQUENCE_BUILTINS:
        raise DataError(f"builtin dataset {name!r} is sequences, not a table (search it with --space sequence)")
    loader, task = BUILTINS[bare]
    bunch = getattr(datasets, loader)()
    frame = pd.DataFrame(np.asarray(bunch.data, dtype=np.float64), columns=[str(n) for n in bunch.feature_names])
    if task == CLASSIFICATION:
        names = np.asarray([str(n) for n in bunch.target_names], dtype=object)
        frame[LABEL] = names[np.asarray(bunch.target, dtype=np.int64)]
    else:
        frame[LABEL] = np.asarray(bunch.target, dtype=np.float64)
    return frame, task


def is_builtin(data: object) -> bool:
    """True for `builtin:NAME` (not a file path): what `predict` and `search` both accept as data."""
    return isinstance(data, str) and data.startswith(PREFIX)


def is_sequence_builtin(data: object) -> bool:
    return is_builtin(data) and builtin_name(str(data)) in SEQUENCE_BUILTINS


def builtin_sequences(name: str) -> RawSequences:
    """A sequence builtin's cases, (steps, channels) float64 each, and their labels, all of them in order."""
    bare = builtin_name(name)
    if bare not in SEQUENCE_BUILTINS:
        raise DataError(f"builtin dataset {name!r} is not sequences; sequence builtins: "
                        f"{', '.join(PREFIX + n for n in sorted(SEQUENCE_BUILTINS))}")
    return SEQUENCE_BUILTINS[bare]()


def builtin_images(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A picture builtin's raw images, (N, 1, H, W) float32 pixels, and its int64 labels."""
    from sklearn import datasets

    bare = builtin_name(name)
    if bare not in IMAGE_BUILTINS:
        raise DataError(f"builtin dataset {name!r} is not images; image builtins: "
                        f"{', '.join(PREFIX + n for n in sorted(IMAGE_BUILTINS))}")
    bunch = getattr(datasets, IMAGE_BUILTINS[bare][0])()
    return np.asarray(bunch.images, dtype=np.float32)[:, None], np.asarray(bunch.target, dtype=np.int64)


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
                 seed: int = 0, as_images: bool = False) -> None:
        if not isinstance(name, str):
            raise ConfigError(f"builtin dataset name must be text, got {name!r}")
        self.name = builtin_name(name)
        check_split_options(valid_fraction, test_fraction, seed)
        if not isinstance(as_images, bool):
            raise ConfigError(f"as_images must be true or false, got {as_images!r}")
        if as_images and self.name not in IMAGE_BUILTINS:
            raise ConfigError(f"as_images applies only to {', '.join(PREFIX + n for n in IMAGE_BUILTINS)}, "
                              f"not {PREFIX}{self.name}")
        self.valid_fraction = float(valid_fraction)
        self.test_fraction = float(test_fraction)
        self.seed = int(seed)
        self.as_images = as_images

    def config(self) -> dict[str, Any]:
        config = {"kind": "builtin", "name": self.name, "valid_fraction": self.valid_fraction,
                  "test_fraction": self.test_fraction, "seed": self.seed}
        if self.as_images:  # only when set, so configs (and stored studies) of tabular builtins are unchanged
            config["as_images"] = True
        return config

    def load(self) -> Dataset:
        if self.as_images:
            return self._load_images()
        if self.name in SEQUENCE_BUILTINS:
            from nasforge.data.sequence import sequence_dataset

            return sequence_dataset(builtin_sequences(self.name), None, source=PREFIX + self.name,
                                    test_source=PREFIX + self.name, valid_fraction=self.valid_fraction,
                                    test_fraction=self.test_fraction, seed=self.seed, info=self.config())
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

    def _load_images(self) -> Dataset:
        """The 8x8 digits as (1, 8, 8) images (pixels 0..16), split exactly as the tabular version."""
        from sklearn import datasets

        from nasforge.data.images import image_dataset

        loader, maximum = IMAGE_BUILTINS[self.name]
        bunch = getattr(datasets, loader)()
        images, labels = builtin_images(self.name)
        return image_dataset((images, labels), name=PREFIX + self.name,
                             class_names=[str(n) for n in bunch.target_names],
                             valid_fraction=self.valid_fraction, test_fraction=self.test_fraction,
                             seed=self.seed, source=self.config(), scale=maximum)
