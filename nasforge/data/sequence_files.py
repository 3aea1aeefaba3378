"""Readers for sequence files: the sktime/aeon `.ts` text format, `.npz` arrays and long-format CSV.

Every reader returns a `RawSequences`: one float64 (steps, channels) array per case (lengths may
differ) and one label string per case, so the provider pads, normalises and splits them the same way
whatever the file was. Any malformed input is a DataError naming the file and, where there is one, the line.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasforge.core.errors import DataError

TS_SUFFIX = ".ts"
_FLAG_KEYS = ("timestamps", "missing", "univariate", "equallength", "classlabel", "targetlabel")


@dataclass
class RawSequences:
    """Cases as (steps, channels) float64 arrays, their labels as text, and the file's declared classes.

    With per-step labels, `step_labels` holds one (steps,) array of label texts per case and `labels` is empty."""

    cases: list[np.ndarray]
    labels: list[str]
    classes: tuple[str, ...] = ()
    step_labels: list[np.ndarray] | None = None

    @property
    def per_step(self) -> bool:
        return self.step_labels is not None

    @property
    def channels(self) -> int:
        return int(self.cases[0].shape[1]) if self.cases else 0


def _flag(value: str, key: str, where: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise DataError(f"{where}: @{key} must be true or false, got {value.strip()!r}")
    return lowered == "true"


def _positive(value: str, key: str, where: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        number = 0
    if number < 1:
        raise DataError(f"{where}: @{key} must be a positive integer, got {value.strip()!r}")
    return number


@dataclass
class _TSHeader:
    univariate: bool | None = None
    dimensions: int | None = None
    equal_length: bool | None = None
    series_length: int | None = None
    missing: bool = False
    class_labels: tuple[str, ...] | None = None


def _header_line(header: _TSHeader, line: str, where: str) -> None:
    key, _, rest = line[1:].partition(" ")
    key = key.lower()
    if key == "timestamps":
        if _flag(rest, key, where):
            raise DataError(f"{where}: @timeStamps true is not supported (give the values without time stamps)")
    elif key == "missing":
        header.missing = _flag(rest, key, where)
    elif key == "univariate":
        header.univariate = _flag(rest, key, where)
    elif key == "dimensions":
        header.dimensions = _positive(rest, key, where)
    elif key == "equallength":
        header.equal_length = _flag(rest, key, where)
    elif key == "serieslength":
        header.series_length = _positive(rest, key, where)
    elif key == "classlabel":
        words = rest.split()
        if not words or not _flag(words[0], key, where):
            raise DataError(f"{where}: @classLabel false: this file has no class labels (sequence "
                            "classification needs them)")
        if len(words) < 3:
            raise DataError(f"{where}: @classLabel true must list at least two class labels")
        if len(set(words[1:])) != len(words) - 1:
            raise DataError(f"{where}: @classLabel lists a class twice")
        header.class_labels = tuple(words[1:])
    elif key == "targetlabel":
        if _flag(rest.split()[0] if rest.split() else "", key, where):
            raise DataError(f"{where}: @targetLabel true (regression) is not supported; sequence data "
                            "must have class labels")
    elif key in ("problemname", "data"):
        pass
    else:
        raise DataError(f"{where}: unknown header line @{line[1:].split(' ')[0]}")


def _ts_values(text: str, where: str, missing: bool) -> np.ndarray:
    values: list[float] = []
    for token in text.split(","):
        token = token.strip()
        if token == "?":
            if not missing:
                raise DataError(f"{where}: a missing value '?' but the header says @missing false")
            values.append(math.nan)
            continue
        try:
            number = float(token)
        except ValueError:
            raise DataError(f"{where}: {token[:30]!r} is not a number") from None
        if not math.isfinite(number):
            raise DataError(f"{where}: {token[:30]!r} is not a finite number")
        values.append(number)
    return np.asarray(values, dtype=np.float64)


def read_ts(path: str | os.PathLike[str]) -> RawSequences:
    """Parse a `.ts` file from its header: dimensions, equal length, series length, class labels, missing."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise DataError(f"{name}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{name}: cannot read as a .ts text file ({exc})") from None
    header = _TSHeader()
    data_at = None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("@"):
            raise DataError(f"{name}:{number}: data before the @data line (is this a .ts file?)")
        _header_line(header, line, f"{name}:{number}")
        if line.lower().startswith("@data"):
            data_at = number
            break
    if data_at is None:
        raise DataError(f"{name}: no @data line (not a sktime/aeon .ts file)")
    if header.class_labels is None:
        raise DataError(f"{name}: no @classLabel line in the header")
    if header.univariate is True and header.dimensions not in (None, 1):
        raise DataError(f"{name}: @univariate true but @dimensions {header.dimensions}")
    dims = header.dimensions or (1 if header.univariate else None)
    known = set(header.class_labels)
    cases: list[np.ndarray] = []
    labels: list[str] = []
    for number in range(data_at + 1, len(lines) + 1):
        line = lines[number - 1].strip()
        if not line or line.startswith("#"):
            continue
        where = f"{name}:{number}"
        parts = line.split(":")
        if len(parts) < 2:
            raise DataError(f"{where}: expected values then ':' then the class label")
        label = parts[-1].strip()
        if label not in known:
            raise DataError(f"{where}: class label {label[:30]!r} is not one of @classLabel "
                            f"{' '.join(header.class_labels)}")
        channels = [_ts_values(text, where, header.missing) for text in parts[:-1]]
        if dims is None:
            dims = len(channels)
        if len(channels) != dims:
            raise DataError(f"{where}: {len(channels)} dimension(s) but the header says {dims}")
        lengths = {len(c) for c in channels}
        if len(lengths) > 1:
            raise DataError(f"{where}: the dimensions of one case have different lengths "
                            f"({', '.join(map(str, sorted(lengths)))})")
        steps = lengths.pop()
        if header.series_length is not None and header.equal_length is not False and steps != header.series_length:
            raise DataError(f"{where}: {steps} steps but @seriesLength is {header.series_length}")
        if header.equal_length and cases and steps != cases[0].shape[0]:
            raise DataError(f"{where}: {steps} steps but @equalLength true and earlier cases have "
                            f"{cases[0].shape[0]}")
        cases.append(np.stack(channels, axis=1))
        labels.append(label)
    if not cases:
        raise DataError(f"{name}: no cases after @data")
    return RawSequences(cases, labels, header.class_labels)


def read_npz(path: str | os.PathLike[str], part: str = "train") -> RawSequences | None:
    """`x_<part>` (cases, steps, channels) or (cases, steps), `y_<part>` labels, optional `lengths_<part>`.

    A plain `x`/`y` pair counts as the training part. Returns None when the archive has no such part.
    """
    name = os.fspath(path)
    try:
        archive = np.load(name, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{name}: file not found") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{name}: cannot read as a NumPy .npz archive ({exc})") from None
    if not hasattr(archive, "files"):
        raise DataError(f"{name}: is a single .npy array; sequence data needs an .npz with x_train and y_train")
    with archive:
        keys = set(archive.files)
        xk, yk, lk = f"x_{part}", f"y_{part}", f"lengths_{part}"
        if part == "train" and xk not in keys and "x" in keys:
            xk, yk, lk = "x", "y", "lengths"
        if xk not in keys and yk not in keys:
            if part == "train":
                raise DataError(f"{name}: missing arrays x_train and y_train; has {', '.join(sorted(keys)) or 'none'}")
            return None
        if (xk in keys) != (yk in keys):
            raise DataError(f"{name}: has {xk if xk in keys else yk} without {yk if xk in keys else xk}")
        x = np.asarray(archive[xk])
        y = np.asarray(archive[yk])
        lengths = np.asarray(archive[lk]) if lk in keys else None
    return _array_cases(x, y, lengths, f"{name} ({xk})")


def _array_cases(x: np.ndarray, y: np.ndarray, lengths: np.ndarray | None, where: str) -> RawSequences:
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise DataError(f"{where}: expected an array of shape (cases, steps, channels), got {x.shape}")
    if x.dtype.kind not in "iuf":
        raise DataError(f"{where}: values must be numbers, got dtype {x.dtype}")
    if y.ndim == 2 and y.shape[1] == 1 and x.shape[1] != 1:
        y = y[:, 0]
    per_step = y.ndim == 2
    if y.ndim not in (1, 2) or y.shape[0] != x.shape[0] or (per_step and y.shape[1] != x.shape[1]):
        raise DataError(f"{where}: {x.shape[0]} cases but labels of shape {y.shape}; give one label per case "
                        f"({x.shape[0]},) or one per step ({x.shape[0]}, {x.shape[1]})")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataError(f"{where}: float labels must be whole class numbers")
        y = y.astype(np.int64)
    x = x.astype(np.float64)
    if lengths is None:
        steps = np.full(x.shape[0], x.shape[1], dtype=np.int64)
    else:
        if lengths.shape != (x.shape[0],) or lengths.dtype.kind not in "iu":
            raise DataError(f"{where}: lengths must be one integer per case")
        if lengths.min(initial=1) < 1 or lengths.max(initial=0) > x.shape[1]:
            raise DataError(f"{where}: lengths must be between 1 and {x.shape[1]} steps")
        steps = lengths.astype(np.int64)
    cases = [x[i, : steps[i]] for i in range(x.shape[0])]
    if any(np.isinf(case).any() for case in cases):
        raise DataError(f"{where}: values must be finite (found inf)")
    if not cases:
        raise DataError(f"{where}: no cases")
    if per_step:  # labels past a case's length are padding, ignored like its values
        return RawSequences(cases, [], step_labels=[np.asarray([str(v) for v in y[i, : steps[i]].tolist()])
                                                    for i in range(len(cases))])
    return RawSequences(cases, [str(v) for v in y.tolist()])


def read_long_csv(path: str | os.PathLike[str], *, id_column: str, time_column: str | None,
                  label: str, sep: str | None = None, step_labels: bool = False) -> RawSequences:
    """One row per step: an id column, an optional time column (sorted by it), features and the case's label
    (the same on every row of a case), or with `step_labels` each step's own label."""
    import pandas as pd

    name = os.fspath(path)
    try:
        frame = pd.read_csv(name, sep=sep or None, engine="python")
    except FileNotFoundError:
        raise DataError(f"{name}: file not found") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{name}: cannot read as CSV ({str(exc).splitlines()[0] if str(exc) else exc})") from None
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if time_column is None and "time" in columns:
        time_column = "time"  # the default: a `time` column orders the steps when the file has one
    for what, column in (("id_column", id_column), ("label", label), ("time_column", time_column)):
        if column is not None and column not in columns:
            raise DataError(f"{name}: no {what} column {column!r}; columns are {', '.join(columns[:10])}")
    features = [c for c in columns if c not in (id_column, time_column, label)]
    if not features:
        raise DataError(f"{name}: no feature columns besides {id_column!r}, {label!r} and the time column")
    values = frame[features].apply(pd.to_numeric, errors="coerce")
    bad = values.isna() & frame[features].notna()
    if bad.to_numpy().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        raise DataError(f"{name}: row {row + 2}, column {features[col]!r}: "
                        f"{str(frame[features[col]].iloc[row])[:30]!r} is not a number")
    if np.isinf(values.to_numpy(dtype=np.float64)).any():
        raise DataError(f"{name}: feature values must be finite (found inf)")
    if frame[id_column].isna().any() or frame[label].isna().any():
        raise DataError(f"{name}: every row needs an {id_column!r} and a {label!r}")
    frame = frame.assign(**{f: values[f] for f in features})
    if time_column is not None:
        times = pd.to_numeric(frame[time_column], errors="coerce")
        if times.isna().any():
            raise DataError(f"{name}: column {time_column!r} must hold numbers (time of each step)")
        frame = frame.assign(**{time_column: times}).sort_values([id_column, time_column], kind="stable")
        if frame.duplicated([id_column, time_column]).any():
            raise DataError(f"{name}: a case has two rows at the same {time_column!r}")
    cases: list[np.ndarray] = []
    labels: list[str] = []
    if step_labels:
        groups = list(frame.groupby(id_column, sort=False))
        return RawSequences([g[features].to_numpy(dtype=np.float64) for _, g in groups], [],
                            step_labels=[g[label].astype(str).to_numpy() for _, g in groups])
    for case_id, group in frame.groupby(id_column, sort=False):
        case_labels = group[label].astype(str).unique()
        if len(case_labels) != 1:
            raise DataError(f"{name}: case {case_id!r} has more than one {label!r} "
                            f"({', '.join(case_labels[:3])}; for one label per step set step_labels=true)")
        cases.append(group[features].to_numpy(dtype=np.float64))
        labels.append(str(case_labels[0]))
    return RawSequences(cases, labels)


def read_sequences(path: str, part: str = "train", **options: Any) -> RawSequences | None:
    """Dispatch on the suffix: `.ts`, `.npz`, else long-format CSV."""
    lower = path.lower()
    if lower.endswith(TS_SUFFIX):
        return read_ts(path) if part == "train" else None
    if lower.endswith(".npz"):
        return read_npz(path, part)
    if lower.endswith(".npy"):
        raise DataError(f"{path}: a single .npy has no labels; give an .npz with x_train (cases, steps, "
                        "channels) and y_train")
    if part != "train":
        return None
    return read_long_csv(path, **options)
