"""CSV/TSV files (optionally gzip, bzip2 or xz compressed) as a tabular data provider.

Reading rules, shared by training (`CSVProvider`) and prediction (`read_features_frame`):

- compression: by magic bytes (so a misnamed file still works); zip archives are refused.
- text: UTF-8 (a BOM is dropped), falling back to Latin-1; UTF-16/UTF-32 with a byte-order mark, and UTF-16
  without one; other files with NUL bytes are refused as binary.
- separator (`sep=None`): `.tsv`/`.tab` (compressed or not) prefer tab, `.csv` prefers comma; the
  preference is kept if it splits the first lines into a constant number (>= 2) of fields, otherwise
  tab, comma, semicolon and pipe are tried in that order; the first consistent one wins.
- header (`header="auto"`): the first row is a header if some column has text there and only
  numbers below it (in the first 50 rows); otherwise, if the first row has a number, it is data; if
  every column is text, it is a header when its cells are distinct and none of them recurs in its
  column below. At prediction time, a first row holding every trained feature name is a header.
  Without a header columns are named `col0`, `col1`, ... (0-based, like the integer `label`).
- missing values: pandas' usual markers (empty, NA, NaN, null, ...) plus `?`.
- every row must have as many fields as the first; blank lines are skipped.
"""

from __future__ import annotations

import bz2
import csv
import difflib
import gzip
import io
import logging
import lzma
import os
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nasforge.core.errors import ConfigError, DataError
from nasforge.data.base import CLASSIFICATION, TASKS, Dataset
from nasforge.data.tabular import (
    DEFAULT_MAX_CATEGORIES,
    LabelEncoder,
    category_strings,
    check_split_options,
    infer_task,
    make_dataset,
    regression_targets,
    split_indices,
)

log = logging.getLogger(__name__)

NA_VALUES = ["?"]  # in addition to pandas' defaults; UCI files mark unknowns this way
SAMPLE_ROWS = 50
SEPARATORS = [",", "\t", ";", "|"]
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?inf(inity)?$", re.IGNORECASE)
_MISSING = {"", "na", "n/a", "nan", "-nan", "null", "none", "?", "#n/a", "<na>"}
_SEP_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe", " ": "space"}


# ----------------------------------------------------------------------------- options


def normalize_header(value: bool | str) -> bool | str:
    """True, False or "auto"; CLI spellings like "yes"/"no" accepted."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("auto", "infer", ""):
            return "auto"
        if text in ("true", "yes", "1", "y"):
            return True
        if text in ("false", "no", "0", "n", "none"):
            return False
    raise ConfigError(f"header must be true, false or auto, got {value!r}")


def normalize_sep(value: str | None) -> str | None:
    """One character, or None to sniff; `\\t` and names like "tab" accepted."""
    if value is None:
        return None
    names = {"\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}
    text = names.get(value.lower(), value) if isinstance(value, str) else value
    if not isinstance(text, str) or len(text) != 1 or text in "\"\r\n":
        raise ConfigError(f"sep must be a single character (or tab, comma, semicolon, pipe), got {value!r}")
    return text


# ----------------------------------------------------------------------------- reading


@dataclass
class Table:
    """A parsed file and the format decisions made for it."""

    frame: pd.DataFrame
    header: bool
    sep: str
    unnamed: tuple[str, ...] = ()  # columns whose header cell was empty


def read_text_file(path: str | os.PathLike[str], kind: str = "CSV/TSV text") -> str:
    """A text file's contents, decompressed by magic bytes (gzip, bz2, xz); every failure a DataError."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: file not found")
    if p.is_dir():
        raise DataError(f"{path}: is a directory, not a file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    try:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        elif data[:3] == b"BZh":
            data = bz2.decompress(data)
        elif data[:6] == b"\xfd7zXZ\x00":
            data = lzma.decompress(data)
        elif data[:4] == b"PK\x03\x04":
            raise DataError(f"{path}: zip archives are not supported; unzip it or gzip the CSV instead")
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
        raise DataError(f"{path}: compressed data is corrupt or truncated ({exc})") from None
    wide = _wide_encoding(data)
    if wide is not None:
        try:
            text = data.decode(wide)
        except UnicodeDecodeError:
            raise DataError(f"{path}: looks like {wide.upper()} text but does not decode as it; "
                            f"save it as UTF-8") from None
        text = text.removeprefix("\ufeff")
    elif b"\x00" in data[:65536]:
        raise DataError(f"{path}: looks like a binary file, not {kind}")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    return text


def _wide_encoding(data: bytes) -> str | None:
    """UTF-32/UTF-16 by their byte-order mark, or UTF-16 without one when every other byte of the start is
    NUL (what Excel's and PowerShell's "Unicode" text looks like); None for anything else."""
    for bom, name in ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
                      (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):
            return name
    head = data[: min(4096, len(data) // 2 * 2)]
    if len(head) >= 4:
        even, odd = head[0::2], head[1::2]
        if odd.count(0) == len(odd) and even.count(0) == 0:
            return "utf-16-le"
        if even.count(0) == len(even) and odd.count(0) == 0:
            return "utf-16-be"
    return None


def _records(lines: Sequence[str] | str, sep: str) -> list[list[str]]:
    source = io.StringIO(lines) if isinstance(lines, str) else lines
    return [row for row in csv.reader(source, delimiter=sep, skipinitialspace=True) if _is_record(row)]


def _is_record(row: list[str]) -> bool:
    return bool(row) and not (len(row) == 1 and not row[0].strip())


def _preferred_sep(path: str | os.PathLike[str]) -> str | None:
    name = str(path).lower()
    for suffix in (".gz", ".gzip", ".bz2", ".xz"):
        name = name.removesuffix(suffix)
    if name.endswith((".tsv", ".tab")):
        return "\t"
    if name.endswith(".csv"):
        return ","
    return None


def _sniff_sep(path: str | os.PathLike[str], sample: list[str]) -> str:
    preferred = _preferred_sep(path)
    candidates = ([preferred] if preferred else []) + [s for s in SEPARATORS if s != preferred]
    for sep in candidates:
        counts = {len(row) for row in _records(sample, sep)}
        if len(counts) == 1 and counts.pop() >= 2:
            return sep
    if preferred:
        return preferred
    first = sample[0] if sample else ""
    best = max(SEPARATORS, key=first.count)
    return best if first.count(best) else ","


def _cell_kind(cell: str) -> str:
    text = cell.strip()
    if text.lower() in _MISSING:
        return "missing"
    return "number" if _NUMBER.match(text) else "text"


def detect_header(records: list[list[str]], known_columns: Sequence[str] = ()) -> bool:
    """The heuristic described in the module docstring, on the first rows of a file."""
    if not records:
        return False
    first = [cell.strip() for cell in records[0]]
    known = set(known_columns)
    if known and len(known & set(first)) >= max(1, len(known) - 1):
        return True  # the trained names (one may be absent: the label, when it is not known)
    rest = records[1:]
    kinds = [_cell_kind(cell) for cell in first]
    if not rest:
        return "text" in kinds
    for j, kind in enumerate(kinds):
        below = [_cell_kind(row[j]) for row in rest if j < len(row)]
        below = [k for k in below if k != "missing"]
        if kind == "text" and below and all(k == "number" for k in below):
            return True
    if any(kind != "text" for kind in kinds) or len(set(first)) != len(first):
        return False
    return not any(first[j] in {row[j].strip() for row in rest if j < len(row)} for j in range(len(first)))


def _check_fields(text: str, sep: str, header: bool, path: str | os.PathLike[str]) -> int:
    """Every record must have as many fields as the first; pandas would pad or shift silently."""
    reader = csv.reader(io.StringIO(text), delimiter=sep, skipinitialspace=True)
    expected = -1
    first_line = 1
    try:
        for row in reader:
            if not _is_record(row):
                continue
            if expected < 0:
                expected, first_line = len(row), reader.line_num
            elif len(row) != expected:
                what = "the header" if header else f"line {first_line}"
                raise DataError(f"{path}: line {reader.line_num} has {len(row)} fields but {what} has "
                                f"{expected} ({_SEP_NAMES.get(sep, repr(sep))}-separated)")
    except csv.Error as exc:
        raise DataError(f"{path}: cannot parse line {reader.line_num} ({exc})") from None
    return expected


def read_table(path: str | os.PathLike[str], *, header: bool | str = "auto", sep: str | None = None,
               known_columns: Sequence[str] = (), names: Sequence[str] | None = None) -> Table:
    """Read a whole file with the module's rules. `names` replaces the `colN` names of a headerless file."""
    header = normalize_header(header)
    sep = normalize_sep(sep)
    text = read_text_file(path)
    sample_lines = text.splitlines()[: SAMPLE_ROWS + 5]
    sep = sep or _sniff_sep(path, sample_lines)
    sample = _records(sample_lines, sep)
    has_header = detect_header(sample[:SAMPLE_ROWS], known_columns) if header == "auto" else bool(header)
    width = _check_fields(text, sep, has_header, path)
    unnamed: list[str] = []
    if has_header:
        column_names = []
        for j, cell in enumerate(sample[0]):
            name = cell.strip()
            if not name:
                name = f"col{j}"
                unnamed.append(name)
            column_names.append(name)
        if len(set(column_names)) != len(column_names):
            dup = next(n for i, n in enumerate(column_names) if n in column_names[:i])
            raise DataError(f"{path}: duplicate column name {dup!r} in the header")
    elif names is not None:
        if len(names) != width:
            raise DataError(f"{path}: has {width} columns, expected {len(names)}")
        column_names = [str(n) for n in names]
    else:
        column_names = [f"col{j}" for j in range(width)]
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, header=0 if has_header else None, names=column_names,
                            index_col=False, skipinitialspace=True, na_values=NA_VALUES,
                            skip_blank_lines=True, low_memory=False)
    except (ValueError, pd.errors.ParserError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot parse as {_SEP_NAMES.get(sep, repr(sep))}-separated text "
                        f"({detail})") from None
    if frame.empty:
        if has_header:
            raise DataError(f"{path}: has a header but no data rows")
        raise DataError(f"{path}: no data rows")
    return Table(frame=frame, header=has_header, sep=sep, unnamed=tuple(unnamed))


def read_features_frame(path: str | os.PathLike[str], *, header: bool | str = "auto", sep: str | None = None,
                        file_columns: Sequence[str] | None = None, label: str | None = None) -> pd.DataFrame:
    """A file to predict on, read like a training file; the label column may be present or not.

    Pass `file_columns` and `label` (`preprocessor.file_columns`, `preprocessor.label`) so a headerless
    file gets the training names (with or without its label column) and `header="auto"` recognises a
    header by its names.
    """
    columns = list(file_columns or ())
    known = [c for c in columns if c != label]
    table = read_table(path, header=header, sep=sep, known_columns=known)
    if table.header or not columns:
        return table.frame
    width = table.frame.shape[1]
    if width == len(columns):
        names = list(columns)
    elif label is not None and label in columns and width == len(columns) - 1:
        names = [c for c in columns if c != label]
    elif label is not None:
        raise DataError(f"{path}: has {width} columns but the model expects {len(known)} "
                        f"(or {len(known) + 1} with the label {label!r})")
    else:
        raise DataError(f"{path}: has {width} columns but the training file had {len(columns)} "
                        "(a headerless file without its label needs the label name to line columns up)")
    frame = table.frame
    frame.columns = pd.Index(names)
    return frame


# ----------------------------------------------------------------------------- provider


def _preview(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def resolve_label(columns: Sequence[str], label: str | int | None, path: str | os.PathLike[str]) -> str:
    """A column name from a name, an index (negative allowed, also as text from a CLI) or None (last)."""
    names = [str(c) for c in columns]
    if label is None:
        return names[-1]
    if isinstance(label, str):
        if label in names:
            return label
        if label.strip() in names:
            return label.strip()
        if not re.fullmatch(r"[+-]?\d+", label.strip()):
            close = difflib.get_close_matches(label, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DataError(f"{path}: label column {label!r} not found; columns are: {_preview(names)}{hint}")
        label = int(label.strip())
    if not -len(names) <= label < len(names):
        raise DataError(f"{path}: label index {label} is out of range for {len(names)} columns")
    return names[label]


class CSVProvider:
    """A CSV/TSV file (plus optional validation and test files) as train/valid/test arrays.

    Without `valid_file`, `valid_fraction` of the training file becomes the validation split; without
    `test_file`, `test_fraction` (default 0) becomes a held-out test split the search never sees.
    Both carved splits are stratified by class for classification, plain random for regression, and
    fixed by `seed`. `max_rows` keeps a seeded random subset of the training file (read in full).
    Rows with a missing label are dropped (logged). `task=None` infers it (see `infer_task`).
    """

    def __init__(self, path: str | os.PathLike[str], *, label: str | int | None = None,
                 header: bool | str = "auto", sep: str | None = None, task: str | None = None,
                 valid_file: str | os.PathLike[str] | None = None, valid_fraction: float = 0.2,
                 test_file: str | os.PathLike[str] | None = None, test_fraction: float = 0.0, seed: int = 0,
                 max_rows: int | None = None, max_categories: int = DEFAULT_MAX_CATEGORIES) -> None:
        if isinstance(label, bool) or not (label is None or isinstance(label, str | int)):
            raise ConfigError(f"label must be a column name or an integer index, got {label!r}")
        if task is not None and task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)} (or omitted to infer), got {task!r}")
        check_split_options(valid_fraction, test_fraction, seed)
        if test_file is not None and test_fraction > 0:
            raise ConfigError("give test_file or test_fraction, not both")
        if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 2):
            raise ConfigError(f"max_rows must be an integer of at least 2, got {max_rows!r}")
        if isinstance(max_categories, bool) or not isinstance(max_categories, int) or max_categories < 1:
            raise ConfigError(f"max_categories must be a positive integer, got {max_categories!r}")
        self.path = os.path.abspath(path)
        self.label = label
        self.header = normalize_header(header)
        self.sep = normalize_sep(sep)
        self.task = task
        self.valid_file = os.path.abspath(valid_file) if valid_file is not None else None
        self.valid_fraction = float(valid_fraction)
        self.test_file = os.path.abspath(test_file) if test_file is not None else None
        self.test_fraction = float(test_fraction)
        self.seed = int(seed)
        self.max_rows = max_rows
        self.max_categories = max_categories

    def config(self) -> dict[str, Any]:
        return {"kind": "csv", "path": self.path, "label": self.label, "header": self.header, "sep": self.sep,
                "task": self.task, "valid_file": self.valid_file, "valid_fraction": self.valid_fraction,
                "test_file": self.test_file, "test_fraction": self.test_fraction, "seed": self.seed,
                "max_rows": self.max_rows, "max_categories": self.max_categories}

    def load(self) -> Dataset:
        table = read_table(self.path, header=self.header, sep=self.sep)
        frame = table.frame
        label = resolve_label(list(frame.columns), self.label, self.path)
        empty_unnamed = [c for c in table.unnamed if c != label and frame[c].isna().all()]
        frame = frame.drop(columns=empty_unnamed)  # a trailing separator on every line
        if frame.shape[1] < 2:
            raise DataError(f"{self.path}: needs at least two columns (features and the label {label!r})")
        if self.max_rows is not None and len(frame) > self.max_rows:
            keep = np.sort(np.random.default_rng(self.seed).choice(len(frame), self.max_rows, replace=False))
            frame = frame.iloc[keep].reset_index(drop=True)
        frame, dropped = self._drop_unlabelled(frame, label, self.path)
        for name in frame.columns:
            if name != label and frame[name].isna().all():
                raise DataError(f"{self.path}: column {name!r} is empty (all values missing)")
        task = self.task or infer_task(frame[label])
        extra = {part: self._read_extra(file, table, list(frame.columns), label)
                 for part, file in (("valid", self.valid_file), ("test", self.test_file)) if file}
        for part in extra:
            extra[part], more = self._drop_unlabelled(extra[part], label, self._file(part))
            dropped += more

        classes: list[str] | None = None
        targets: dict[str, np.ndarray] = {}
        if task == CLASSIFICATION:
            encoder = LabelEncoder().fit(pd.concat([frame[label]] + [f[label] for f in extra.values()]))
            if len(encoder.classes) < 2:
                only = encoder.classes[0] if encoder.classes else "?"
                raise DataError(f"{self.path}: label column {label!r} has only one class ({only!r}); "
                                "classification needs at least two")
            classes = list(encoder.classes)
            y = encoder.transform(frame[label], source=self.path, column=label)
            for part, f in extra.items():
                targets[part] = encoder.transform(f[label], source=self._file(part), column=label)
        else:
            y = regression_targets(frame[label], source=self.path, column=label)
            if np.unique(y).size < 2:
                raise DataError(f"{self.path}: label column {label!r} is constant ({float(y[0])!r}); "
                                "nothing to learn")
            for part, f in extra.items():
                targets[part] = regression_targets(f[label], source=self._file(part), column=label)

        train_idx, valid_idx, test_idx = split_indices(
            len(frame), labels=y if task == CLASSIFICATION else None,
            valid_fraction=0.0 if "valid" in extra else self.valid_fraction,
            test_fraction=0.0 if "test" in extra else self.test_fraction, seed=self.seed, source=self.path)
        features = frame.drop(columns=[label])
        parts = {"train": (features.iloc[train_idx], y[train_idx])}
        parts["valid"] = ((extra["valid"].drop(columns=[label]), targets["valid"]) if "valid" in extra
                          else (features.iloc[valid_idx], y[valid_idx]))
        if "test" in extra:
            parts["test"] = (extra["test"].drop(columns=[label]), targets["test"])
        elif self.test_fraction > 0:
            parts["test"] = (features.iloc[test_idx], y[test_idx])
        source = self.config() | {"label_column": label, "task": task, "header": table.header, "sep": table.sep,
                                  "columns": [str(c) for c in frame.columns], "dropped_rows": dropped}
        dataset = make_dataset({k: v[0] for k, v in parts.items()}, {k: v[1] for k, v in parts.items()},
                               task=task, classes=classes, label=label, file_columns=list(frame.columns),
                               source=source, name=self.path, max_categories=self.max_categories,
                               part_names={part: self._file(part) for part in extra})
        if "test" not in extra and self.test_fraction > 0:
            dataset.held_out_rows = frame.iloc[test_idx].reset_index(drop=True)
        return dataset

    def _file(self, part: str) -> str:
        return str(self.valid_file if part == "valid" else self.test_file)

    @staticmethod
    def _drop_unlabelled(frame: pd.DataFrame, label: str, path: str) -> tuple[pd.DataFrame, int]:
        missing = category_strings(frame[label]).isna().to_numpy()
        if missing.all():
            raise DataError(f"{path}: label column {label!r} is empty (all values missing)")
        if missing.any():
            log.warning("%s: dropped %d row(s) with a missing label %r", path, int(missing.sum()), label)
            frame = frame.loc[~missing].reset_index(drop=True)
        return frame, int(missing.sum())

    def _read_extra(self, path: str, train: Table, columns: list[str], label: str) -> pd.DataFrame:
        """A validation or test file: same header convention, same columns (any order if it has a header)."""
        table = read_table(path, header=train.header, sep=self.sep)
        if not train.header:
            width, expected = table.frame.shape[1], train.frame.shape[1]
            if width != expected:
                raise DataError(f"{path}: columns do not match {self.path}: has {width} columns, "
                                f"expected {expected}")
            table.frame.columns = train.frame.columns
        frame = table.frame.drop(columns=[c for c in table.unnamed if c not in columns and
                                          table.frame[c].isna().all()])
        have = [str(c) for c in frame.columns]
        absent = [c for c in columns if c not in have]
        unexpected = [c for c in have if c not in columns and c not in train.unnamed]
        if absent or unexpected:
            problems = []
            if absent:
                problems.append(f"missing {_preview(absent, 5)}")
            if unexpected:
                problems.append(f"unexpected {_preview(unexpected, 5)}")
            raise DataError(f"{path}: columns do not match {self.path}: {'; '.join(problems)}")
        return frame[columns]
