"""`Provider`: the base class for data that nasforge does not read itself (your own arrays, a database, ...).

A subclass returns raw data from `train()` (and optionally `valid()` and `test()`); `load()` turns it into a
`Dataset` with the same preprocessing a CSV or image file gets, fitted on the training split only, so that
`predict` and `export` take raw rows (or raw images) exactly like the data the provider returned.

How a worker process gets the data (see docs/plugins.md): a provider whose `config()` returns JSON options
is rebuilt there by its import path (`{"kind": "provider", "factory": "pkg.mod:Cls", "options": {...}}`);
any other provider (arrays in memory, a class in `__main__`) is loaded once in the calling process and the
model-ready splits are written to the study folder (`nasforge.data.memory`), which workers and resume read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from nasforge.core.errors import ConfigError, DataError
from nasforge.data.base import CLASSIFICATION, REGRESSION, TASKS, Dataset, DataSpec, Split
from nasforge.data.tabular import LabelEncoder, check_split_options, infer_task, make_dataset, split_indices

PREPROCESSING = ("auto", "tabular", "images", "none")
LABEL = "target"


class Provider:
    """Your data, as nasforge sees it: subclass, implement `train()`, and pass an instance to `search(provider=)`.

    `train()`, `valid()` and `test()` return `(X, y)`: X a DataFrame, a NumPy array or anything array-like,
    y the labels (any type for classes; numbers for regression). A `torch.utils.data.Dataset` of `(x, y)`
    items works too. `valid()` returning None carves `valid_fraction` of the training rows (stratified,
    seeded); `test()` returning None carves `test_fraction` (0: no test split).

    `preprocessing` says what `predict` and `export` redo on raw inputs: `tabular` (numbers standardised,
    text one-hot, as for CSV files), `images` ((N, C, H, W) or (N, H, W[, C]) pixels normalised per
    channel), `none` (float32 arrays used as given; such models cannot be exported) or `auto` (tabular for
    DataFrames and 2-D arrays, images for 4-D arrays, none otherwise).
    """

    task: str | None = None  # "classification" or "regression"; None: inferred from the training labels
    preprocessing: str = "auto"
    valid_fraction: float = 0.2
    test_fraction: float = 0.0
    seed: int = 0

    def train(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement train() -> (X, y)")

    def valid(self) -> Any:
        return None

    def test(self) -> Any:
        return None

    def class_names(self) -> Sequence[str] | None:
        """Names of classes 0..k-1 when the labels are integer codes; None: the labels themselves."""
        return None

    def num_outputs(self) -> int | None:
        """Outputs of the network (classes, or 1 for regression); None: from the labels. Checked against them."""
        return None

    def input_shape(self) -> tuple[int, ...] | None:
        """The shape of one model input after preprocessing; None: from the data. Checked against it."""
        return None

    def config(self) -> dict[str, Any] | None:
        """JSON keyword arguments that rebuild this provider (`type(self)(**config)`) in another process.

        None (the default): the loaded data is written to the study folder instead; see the module docstring.
        """
        return None

    @property
    def name(self) -> str:
        return type(self).__name__

    def load(self) -> Dataset:
        return build_dataset(self)


class ArrayProvider(Provider):
    """`search(X, y)`: arrays, a DataFrame (with `y` a column name or the labels) or a torch Dataset."""

    def __init__(self, x: Any, y: Any = None, *, task: str | None = None, valid_fraction: float = 0.2,
                 test_fraction: float = 0.0, seed: int = 0, preprocessing: str = "auto") -> None:
        if isinstance(x, pd.DataFrame) and isinstance(y, str | int) and not isinstance(y, bool):
            if y not in x.columns:
                raise DataError(f"label column {y!r} not found in the DataFrame's columns")
            x, y = x.drop(columns=[y]), x[y]
        if y is None and not _is_item_dataset(x):
            raise ConfigError("in-memory data needs labels: search(X, y), or a DataFrame with label='column'")
        self._train = (x, y) if y is not None else x
        self.task = task
        self.valid_fraction = valid_fraction
        self.test_fraction = test_fraction
        self.seed = seed
        self.preprocessing = preprocessing

    @property
    def name(self) -> str:
        return "memory"

    def train(self) -> Any:
        return self._train


def build_dataset(provider: Provider) -> Dataset:
    """A provider's raw splits -> a Dataset, with its checks (task, shapes, outputs) as one-line DataErrors."""
    name = provider.name
    check_split_options(provider.valid_fraction, provider.test_fraction, provider.seed)
    if provider.preprocessing not in PREPROCESSING:
        raise ConfigError(f"{name}: preprocessing must be one of {', '.join(PREPROCESSING)}, "
                          f"got {provider.preprocessing!r}")
    raw = {"train": _pair(provider.train(), name, "train")}
    for part in ("valid", "test"):
        given = getattr(provider, part)()
        if given is not None:
            raw[part] = _pair(given, name, part)
    if "test" in raw and provider.test_fraction > 0:
        raise ConfigError(f"{name}: test() returns a test split, so test_fraction does not apply")
    mode = _mode(provider.preprocessing, raw["train"][0])
    labels = raw["train"][1]
    task = provider.task or (CLASSIFICATION if mode == "images" else infer_task(pd.Series(labels)))
    if task not in TASKS:
        raise ConfigError(f"{name}: task must be one of {', '.join(TASKS)}, got {task!r}")
    if mode == "images" and task != CLASSIFICATION:
        raise ConfigError(f"{name}: image data is for classification, not {task}")
    classes, targets = _encode(provider, raw, task)
    raw = _carve(raw, targets, provider, name, task)
    targets = {part: targets[part] for part in raw}
    if mode == "tabular":
        dataset = _tabular(raw, targets, task, classes, name)
    elif mode == "images":
        from nasforge.data.images import as_nchw, image_dataset

        images = {part: as_nchw(np.asarray(x), name) for part, (x, _) in raw.items()}
        dataset = image_dataset((images["train"], targets["train"]), name=name,
                                valid=(images["valid"], targets["valid"]),
                                test=(images["test"], targets["test"]) if "test" in raw else None,
                                class_names=classes or (), valid_fraction=0.0, test_fraction=0.0, seed=provider.seed)
    else:
        dataset = _plain(raw, targets, task, classes, name)
    _check_declared(provider, dataset)
    dataset.source = {**dataset.source, "kind": "provider", "provider": name, "task": task}
    return dataset


def _is_item_dataset(obj: Any) -> bool:
    """A map-style dataset of (x, y) items (torch.utils.data.Dataset and the like), not an array."""
    return (hasattr(obj, "__getitem__") and hasattr(obj, "__len__")
            and not isinstance(obj, np.ndarray | pd.DataFrame | pd.Series | list | tuple | str | bytes))


def _pair(given: Any, name: str, part: str) -> tuple[Any, np.ndarray]:
    if _is_item_dataset(given):
        return _from_items(given, name, part)
    if not isinstance(given, tuple | list) or len(given) != 2:
        raise DataError(f"{name}.{part}() must return (X, y) or a dataset of (x, y) items, "
                        f"got {type(given).__name__}")
    x, y = given
    if not isinstance(x, pd.DataFrame):
        if _is_item_dataset(x) or not hasattr(x, "__len__"):
            raise DataError(f"{name}.{part}(): X must be a DataFrame or an array, got {type(x).__name__}")
        x = _numpy(x)
    y = _numpy(y.to_numpy() if isinstance(y, pd.Series | pd.DataFrame) else y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{name}.{part}(): y must be one label or value per row, got shape {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{name}.{part}(): X has {len(x)} rows but y has {len(y)}")
    if len(y) == 0:
        raise DataError(f"{name}.{part}(): no rows")
    return x, y


def _numpy(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _from_items(items: Any, name: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a map-style dataset once: its `(x, y)` items stacked into two arrays."""
    xs, ys = [], []
    for i in range(len(items)):
        item = items[i]
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise DataError(f"{name}.{part}(): item {i} of the dataset is not an (x, y) pair")
        xs.append(_numpy(item[0]))
        ys.append(_numpy(item[1]).reshape(-1)[0] if np.ndim(_numpy(item[1])) else _numpy(item[1]).item())
    if not xs:
        raise DataError(f"{name}.{part}(): the dataset has no items")
    shapes = {x.shape for x in xs}
    if len(shapes) > 1:
        raise DataError(f"{name}.{part}(): items have different shapes ({', '.join(map(str, sorted(shapes)[:3]))})")
    return np.stack(xs), np.asarray(ys)


def _mode(preprocessing: str, x: Any) -> str:
    if preprocessing != "auto":
        return preprocessing
    if isinstance(x, pd.DataFrame) or np.ndim(x) == 2:
        return "tabular"
    return "images" if np.ndim(x) == 4 else "none"


def _encode(provider: Provider, raw: dict[str, tuple[Any, np.ndarray]],
            task: str) -> tuple[list[str] | None, dict[str, np.ndarray]]:
    """Class names and int64 codes (classification) or float32 targets (regression), per split."""
    name = provider.name
    if task == REGRESSION:
        out = {}
        for part, (_, y) in raw.items():
            try:
                values = np.asarray(y, dtype=np.float32)
            except (TypeError, ValueError):
                raise DataError(f"{name}.{part}(): regression targets must be numbers") from None
            if not np.isfinite(values).all():
                raise DataError(f"{name}.{part}(): a regression target is missing or infinite")
            out[part] = values
        return None, out
    declared = provider.class_names()
    count = provider.num_outputs()
    if declared is not None or count is not None:  # labels are codes 0..k-1
        names = [str(c) for c in declared] if declared is not None else [str(i) for i in range(int(count or 0))]
        codes = {}
        for part, (_, y) in raw.items():
            if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
                raise DataError(f"{name}.{part}(): with class_names()/num_outputs() the labels must be "
                                "integer codes 0..k-1")
            values = y.astype(np.int64)
            if values.min() < 0 or values.max() >= len(names):
                raise DataError(f"{name}.{part}(): label {int(values.max())} is out of range for "
                                f"{len(names)} classes")
            codes[part] = values
        return names, codes
    encoder = LabelEncoder().fit(pd.Series(raw["train"][1]))
    codes = {part: encoder.transform(pd.Series(y), source=f"{name}.{part}()", column="y")
             for part, (_, y) in raw.items()}
    return list(encoder.classes), codes


def _carve(raw: dict[str, tuple[Any, np.ndarray]], targets: dict[str, np.ndarray], provider: Provider,
           name: str, task: str) -> dict[str, tuple[Any, np.ndarray]]:
    """Validation (and test) rows taken from the training split where the provider gives none."""
    valid_fraction = 0.0 if "valid" in raw else provider.valid_fraction
    test_fraction = 0.0 if "test" in raw else provider.test_fraction
    if valid_fraction == 0.0 and test_fraction == 0.0:
        if "valid" not in raw:
            raise ConfigError(f"{name}: valid() returns nothing and valid_fraction is 0; one must give a "
                              "validation split")
        return raw
    x, _ = raw["train"]
    y = targets["train"]
    train, valid, test = split_indices(len(y), labels=y if task == CLASSIFICATION else None,
                                       valid_fraction=valid_fraction, test_fraction=test_fraction,
                                       seed=provider.seed, source=name)
    out = dict(raw)
    for part, rows in (("train", train), ("valid", valid), ("test", test)):
        if part == "train" or (part == "valid" and valid_fraction) or (part == "test" and test_fraction):
            out[part] = (_rows(x, rows), raw["train"][1][rows])
            targets[part] = y[rows]
    return out


def _rows(x: Any, rows: np.ndarray) -> Any:
    return x.iloc[rows].reset_index(drop=True) if isinstance(x, pd.DataFrame) else x[rows]


def _tabular(raw: dict[str, tuple[Any, np.ndarray]], targets: dict[str, np.ndarray], task: str,
             classes: list[str] | None, name: str) -> Dataset:
    frames = {part: _frame(x, name, part) for part, (x, _) in raw.items()}
    columns = list(frames["train"].columns)
    for part, frame in frames.items():
        if list(frame.columns) != columns:
            raise DataError(f"{name}: the {part} split's columns differ from the training split's")
    label = LABEL if LABEL not in columns else "__target__"
    return make_dataset(frames, targets, task=task, classes=classes, label=label, file_columns=[*columns, label],
                        source={}, name=name)


def _frame(x: Any, name: str, part: str) -> pd.DataFrame:
    if isinstance(x, pd.DataFrame):
        return x.rename(columns=str).reset_index(drop=True)
    if np.ndim(x) != 2:
        raise DataError(f"{name}.{part}(): tabular X must be 2-D (rows, features), got shape {np.shape(x)}")
    return pd.DataFrame(x, columns=[f"x{i}" for i in range(np.shape(x)[1])])


def _plain(raw: dict[str, tuple[Any, np.ndarray]], targets: dict[str, np.ndarray], task: str,
           classes: list[str] | None, name: str) -> Dataset:
    """Arrays used as given: float32 features, no preprocessing to redo at prediction time."""
    splits = {}
    for part, (x, _) in raw.items():
        if isinstance(x, pd.DataFrame):
            raise DataError(f"{name}: preprocessing='none' takes arrays, not DataFrames")
        try:
            features = np.ascontiguousarray(x, dtype=np.float32)
        except (TypeError, ValueError):
            raise DataError(f"{name}.{part}(): X must be numbers with preprocessing='none'") from None
        if not np.isfinite(features).all():
            raise DataError(f"{name}.{part}(): X has missing or infinite values (preprocessing='none')")
        splits[part] = Split(features, targets[part])
    shape = tuple(int(v) for v in splits["train"].x.shape[1:])
    for part, split in splits.items():
        if tuple(split.x.shape[1:]) != shape:
            raise DataError(f"{name}: {part} inputs have shape {tuple(split.x.shape[1:])}, training inputs {shape}")
    spec = DataSpec(task=task, input_shape=shape, num_outputs=len(classes) if classes else 1,
                    class_names=tuple(classes or ()))
    return Dataset(spec, splits["train"], splits["valid"], splits.get("test"), preprocessor=None,
                   source={"rows": {part: len(split) for part, split in splits.items()}})


def _check_declared(provider: Provider, dataset: Dataset) -> None:
    outputs, shape = provider.num_outputs(), provider.input_shape()
    if outputs is not None and int(outputs) != dataset.spec.num_outputs:
        raise DataError(f"{provider.name}: num_outputs() is {outputs} but the data has {dataset.spec.num_outputs}")
    if shape is not None and tuple(int(v) for v in shape) != tuple(dataset.spec.input_shape):
        raise DataError(f"{provider.name}: input_shape() is {tuple(shape)} but the preprocessed inputs are "
                        f"{tuple(dataset.spec.input_shape)}")
