"""Predicting with an exported file, without torch for ONNX: NumPy, onnxruntime and this module.

An export is one file with its metadata inside (ONNX: the model's `nasforge` metadata property;
TorchScript: the archive's `extra/nasforge.json`). The graph takes a float64 matrix with one column per
raw feature column. Numbers go in as they are; a text column goes in as the index of its value in the
stored vocabulary (`input.columns[i].categories`), so the only non-numeric step, looking a string up in
a list, happens here and not in the graph: ONNX and TorchScript have no portable string ops, and any
other language can do the same lookup from the JSON. Everything else (imputation, indicators,
scaling, one-hot, image normalisation) runs inside the graph.

This module imports NumPy only; pandas is imported for CSV files and frames, onnxruntime for `.onnx`
files and torch only for TorchScript files.
"""

from __future__ import annotations

import contextlib
import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.core.errors import ConfigError, DataError

FEATURE_LIMIT = float(np.finfo(np.float32).max)  # nasforge.data.tabular.FEATURE_LIMIT, without pandas

FORMAT = "nasforge.export"
VERSION = 1
ONNX = "onnx"
TORCHSCRIPT = "torchscript"
FORMATS = (TORCHSCRIPT, ONNX)
METADATA_KEY = "nasforge"  # ONNX metadata property
EXTRA_FILE = "nasforge.json"  # TorchScript extra file
INPUT_NAME = "input"
OUTPUT_NAME = "output"
# the ONNX extras: from PyPI, or inside a clone of nasforge with the pinned CPU-only versions
INSTALL_EXPORT = "pip install 'nasforge[export]' (in a clone: pip install -c constraints.txt -e \".[export]\")"
CLASSIFICATION = "classification"
_BATCH = {"tabular": 8192, "image": 256, "sequence": 256}


# ----------------------------------------------------------------------------- encoding raw rows


def category_text(value: Any) -> str:
    """Same spelling as `nasforge.data.tabular.category_text` (tested equal), so 1, 1.0 and "1" agree."""
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value).strip()


def is_missing(value: Any) -> bool:
    """None, NaN and pandas' NA/NaT, as `pandas.isna` sees them."""
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(float(value))
    return type(value).__name__ in ("NAType", "NaTType")


def _numbers(values: Any, name: str, source: str) -> np.ndarray:
    try:
        out = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        out = np.empty(len(values), dtype=np.float64)
        for row, value in enumerate(values):
            if is_missing(value):
                out[row] = np.nan
                continue
            try:
                out[row] = float(value.strip() if isinstance(value, str) else value)
            except (TypeError, ValueError):
                raise DataError(f"{source}: column {name!r} must be numeric but has {value!r} "
                                f"(data row {row + 1})") from None
    out = out.reshape(-1)
    with np.errstate(invalid="ignore"):
        out[~(np.abs(out) <= FEATURE_LIMIT)] = np.nan  # as training cleaned them (nasforge.data.tabular)
    return out


def _codes(values: Any, categories: Sequence[str]) -> np.ndarray:
    """Vocabulary index per value; len(categories) for an unseen value, NaN for a missing one."""
    index = {text: i for i, text in enumerate(categories)}
    other = len(categories)
    out = np.empty(len(values), dtype=np.float64)
    cache: dict[Any, int] = {}
    for row, value in enumerate(values):
        if is_missing(value):
            out[row] = np.nan
            continue
        try:
            out[row] = cache[value]
        except (KeyError, TypeError):
            code = index.get(category_text(value), other)
            with contextlib.suppress(TypeError):  # unhashable values are looked up every time
                cache[value] = code
            out[row] = code
    return out


def _column_values(column: Any) -> Any:
    values = column.to_numpy() if hasattr(column, "to_numpy") else column
    return values if isinstance(values, np.ndarray) else list(values)


def encode_rows(columns: Sequence[Mapping[str, Any]], data: Any, source: str = "input") -> np.ndarray:
    """Raw rows -> the graph's float64 (rows, columns) input.

    `data`: a pandas DataFrame or a dict of columns (selected by name; order and extra columns such as
    the label do not matter), a list of row dicts, or a 2-D array / list of lists of raw values in
    training column order.
    """
    names = [str(spec["name"]) for spec in columns]
    if isinstance(data, list | tuple) and data and isinstance(data[0], Mapping):
        data = {name: [row.get(name) for row in data] for name in names if any(name in row for row in data)}
    if hasattr(data, "columns") or isinstance(data, Mapping):
        present = {str(c): c for c in (data.columns if hasattr(data, "columns") else data.keys())}
        absent = [name for name in names if name not in present]
        if absent:
            listed = ", ".join(repr(n) for n in absent[:8]) + (" ..." if len(absent) > 8 else "")
            raise DataError(f"{source}: missing feature column(s) {listed} ({len(absent)} of {len(names)} expected)")
        raw = [_column_values(data[present[name]]) for name in names]
    else:
        array = np.asarray(data, dtype=object)
        if array.ndim == 1 and len(names) > 0 and array.size == len(names):
            array = array.reshape(1, -1)
        if array.ndim != 2 or array.shape[1] != len(names):
            raise DataError(f"{source}: expected rows of {len(names)} raw features ({', '.join(names[:5])}"
                            f"{'...' if len(names) > 5 else ''}), got an array of shape {array.shape}")
        raw = [array[:, j] for j in range(len(names))]
    rows = len(raw[0]) if raw else 0
    out = np.empty((rows, len(names)), dtype=np.float64)
    for j, (spec, values) in enumerate(zip(columns, raw)):
        if spec["kind"] == "numeric":
            out[:, j] = _numbers(values, names[j], source)
        else:
            out[:, j] = _codes(values, spec["categories"])
    return out


@dataclass(frozen=True)
class SequenceBatch:
    """Raw sequence cases, (steps, channels) each, with their class labels (text) when the file has them."""

    cases: list[np.ndarray]
    labels: list[str] | None = None
    step_labels: list[np.ndarray] | None = None  # one (steps,) array of label texts per case (per-step data)


def read_sequence_batch(path: str | Path, step_labels: bool = False) -> SequenceBatch:
    """A `.ts` file, an `.npz` (its test part when it has one, else x/x_train) or a long CSV (id, time, label
    columns by their default names) or `builtin:NAME` (a sequence builtin whole), read as `search` reads them."""
    from nasforge.data.builtin import builtin_sequences, is_builtin
    from nasforge.data.sequence_files import read_sequences

    name = str(path)
    if is_builtin(name):
        generated = builtin_sequences(name)
        return SequenceBatch(list(generated.cases), list(generated.labels))
    if not Path(name).is_file():
        raise DataError(f"{name}: file not found")
    raw = read_sequences(name, "test") if name.lower().endswith(".npz") else None
    if raw is None:
        raw = read_sequences(name, "train", id_column="id", time_column=None, label="label", sep=None,
                             step_labels=step_labels)
    assert raw is not None
    return SequenceBatch(list(raw.cases), list(raw.labels) if raw.labels else None, raw.step_labels)


def sequence_batch(cases: Sequence[Any], length: int, mean: Sequence[float], source: str = "input") -> np.ndarray:
    """Raw cases -> float32 (N, length, channels + 1): the last `length` steps, zero padding at the end, a
    missing value at the channel's training mean (0 once normalised), the mask last. The graph normalises."""
    centre = np.asarray(mean, dtype=np.float64).reshape(-1)
    channels = len(centre)
    out = np.zeros((len(cases), int(length), channels + 1), dtype=np.float32)
    for i, case in enumerate(cases):
        values = np.asarray(case, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[1] != channels:
            raise DataError(f"{source}: case {i} has shape {values.shape}; the model expects "
                            f"(steps, {channels}) channels")
        values = values[-int(length):]
        out[i, : len(values), :channels] = np.where(np.isnan(values), centre, values)
        out[i, : len(values), channels] = 1.0
    return out


def image_batch(data: Any, shape: Sequence[int], source: str = "input") -> np.ndarray:
    """Raw pixels (uint8 or float, unscaled) as float32 (N, C, H, W); accepts CHW, HWC or HW, one or a batch."""
    c, h, w = (int(v) for v in shape)
    x = np.asarray(data)
    if x.dtype.kind not in "uif":
        raise DataError(f"{source}: images must be numeric pixel arrays, got dtype {x.dtype}")
    for single in (False, True):
        rest = tuple(x.shape) if single else tuple(x.shape[1:])
        batch = x[None] if single else x
        if rest == (c, h, w):
            return batch.astype(np.float32)
        if rest == (h, w, c):
            return batch.transpose(0, 3, 1, 2).astype(np.float32)
        if c == 1 and rest == (h, w):
            return batch[:, None].astype(np.float32)
    raise DataError(f"{source}: expected images of (C, H, W) = {(c, h, w)} (or H, W, C), got shape {x.shape}")


# ----------------------------------------------------------------------------- files


def format_of(path: str | Path) -> str:
    """ONNX or TorchScript, from the name (.onnx) or the content (TorchScript files are zip archives)."""
    p = Path(path)
    if p.suffix.lower() == ".onnx":
        return ONNX
    return TORCHSCRIPT if zipfile.is_zipfile(p) else ONNX


def _check_metadata(meta: Any, path: Path) -> dict[str, Any]:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{path}: not a nasforge export (no {FORMAT} metadata); make one with `nasforge export`")
    if meta.get("version") != VERSION:
        raise DataError(f"{path}: nasforge export version {meta.get('version')!r}; this nasforge reads {VERSION}")
    return meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON an export carries (task, classes, input columns and vocabularies, source trial)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: file not found (--model)")
    if format_of(p) == TORCHSCRIPT:
        with zipfile.ZipFile(p) as archive:
            names = [n for n in archive.namelist() if n.endswith("/extra/" + EXTRA_FILE)]
            if not names:
                raise DataError(f"{path}: a zip/torch file but not a nasforge export (a training checkpoint "
                                "model.pt is used with --study, not --model)")
            return _check_metadata(json.loads(archive.read(names[0])), p)
    session = _onnx_session(p)
    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    return _check_metadata(json.loads(text) if text else None, p)


def _onnx_session(path: Path) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("ONNX files need onnxruntime: " + INSTALL_EXPORT) from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise DataError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from None


class ShippedModel:
    """An exported file, ready to predict on raw rows or raw images."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.meta = read_metadata(self.path)
        self.format = format_of(self.path)
        self.task: str = self.meta["task"]
        self.class_names: tuple[str, ...] = tuple(self.meta.get("class_names") or ())
        self.input: dict[str, Any] = self.meta["input"]
        self.kind: str = self.input["kind"]
        self._runner: Any = None

    # ---- inputs --------------------------------------------------------------------------
    @property
    def input_columns(self) -> tuple[str, ...]:
        return tuple(str(spec["name"]) for spec in self.input.get("columns", ()))

    def read(self, path: str | Path) -> Any:
        """A CSV/TSV file (tabular models) or a .npy/.npz array of raw images (image models), or
        `builtin:NAME` (that builtin dataset whole)."""
        from nasforge.data.builtin import builtin_frame, builtin_images, is_builtin

        if self.kind == "sequence":
            return read_sequence_batch(path)
        if is_builtin(path):
            return builtin_images(str(path))[0] if self.kind == "image" else builtin_frame(str(path))[0]
        if self.kind == "image":
            return read_image_array(path)
        from nasforge.data.csv import read_features_frame

        pre = self.input.get("preprocessor") or {}
        return read_features_frame(str(path), file_columns=pre.get("file_columns") or None, label=pre.get("label"))

    def encode(self, data: Any, source: str = "input") -> np.ndarray:
        """What the graph takes: encoded columns (float64, or float32 for a file exported with
        `--input-dtype float32`), or float32 (N, C, H, W) raw pixels."""
        if isinstance(data, str | Path):
            data = self.read(data)
        if self.kind == "image":
            return image_batch(data, self.input["shape"], source)
        if self.kind == "sequence":
            cases = data.cases if isinstance(data, SequenceBatch) else list(data)
            return sequence_batch(cases, self.input["length"], self.input["mean"], source)
        return encode_rows(self.input["columns"], data, source).astype(self.input.get("dtype", "float64"), copy=False)

    # ---- running -------------------------------------------------------------------------
    def run(self, x: np.ndarray) -> np.ndarray:
        """The graph's raw output (probabilities or values) for an already encoded batch."""
        x = np.asarray(x, dtype=self.input.get("dtype", "float64"))  # the graph's one input type
        if self._runner is None:
            self._runner = self._onnx_runner() if self.format == ONNX else self._torchscript_runner()
        step = _BATCH.get(self.kind, 1024)
        parts = [self._runner(x[i:i + step]) for i in range(0, len(x), step)] or [self._runner(x[:0])]
        return np.concatenate(parts, axis=0)

    def _onnx_runner(self) -> Any:
        session = _onnx_session(self.path)
        name = session.get_inputs()[0].name
        return lambda batch: np.asarray(session.run(None, {name: batch})[0])

    def _torchscript_runner(self) -> Any:
        import warnings

        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still loads
            module = torch.jit.load(str(self.path), map_location="cpu")
        module.eval()

        def run(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return np.asarray(module(torch.from_numpy(np.ascontiguousarray(batch))).numpy())
        return run

    # ---- outputs (as nasforge.predict.Predictor) ----------------------------------------
    def predict_raw(self, data: Any) -> np.ndarray:
        """Class probabilities (rows, classes), or values: (rows,) for one target."""
        out = self.run(self.encode(data, source="prediction data"))
        if self.task != CLASSIFICATION and out.ndim == 2 and out.shape[1] == 1:
            return out.reshape(-1)
        return out

    def predict(self, data: Any) -> np.ndarray:
        out = self.predict_raw(data)
        if self.task != CLASSIFICATION:
            return out
        indices = out.argmax(axis=1)
        return class_values(self.class_names)[indices] if self.class_names else indices

    def prediction_frame(self, data: Any, proba: bool = False) -> Any:
        return prediction_frame(self.predict_raw(data), self.task, self.class_names, proba)

    def evaluate(self, data: Any) -> dict[str, float]:
        """Accuracy, or rmse and r2, on a labelled table (tabular models)."""
        pre = self.input.get("preprocessor") or {}
        label = pre.get("label")
        if isinstance(data, str | Path):
            data = self.read(data)
        if self.kind == "sequence":
            if not isinstance(data, SequenceBatch) or data.labels is None:
                raise DataError("--evaluate on a sequence model needs labelled cases (a .ts or .npz with labels)")
            index = {name: i for i, name in enumerate(self.class_names)}
            unknown = sorted(set(data.labels) - set(index))
            if unknown:
                raise DataError(f"--evaluate: class(es) {', '.join(unknown[:5])} are not classes of this model")
            y_seq = np.asarray([index[v] for v in data.labels], dtype=np.int64)
            return {"accuracy": float(np.mean(self.predict_raw(data).argmax(axis=1) == y_seq)) if len(y_seq)
                    else math.nan}
        if self.kind != "tabular" or not hasattr(data, "columns") or label is None:
            raise DataError("--evaluate needs a tabular model and a labelled CSV with the training file's columns")
        if label not in data.columns:
            raise DataError(f"--evaluate: the file has no label column {label!r}")
        out = self.predict_raw(data)
        values = _column_values(data[label])
        if self.task == CLASSIFICATION:
            index = {name: i for i, name in enumerate(self.class_names)}
            y = np.empty(len(values), dtype=np.int64)
            for row, value in enumerate(values):
                text = None if is_missing(value) else category_text(value)
                if text not in index:
                    problem = "is missing" if text is None else f"has class {text!r} not seen in training"
                    raise DataError(f"prediction data: label column {label!r} {problem} (data row {row + 1})")
                y[row] = index[text]
            return {"accuracy": float(np.mean(out.argmax(axis=1) == y)) if len(y) else math.nan}
        target = _numbers(values, label, "prediction data")
        if np.isnan(target).any():
            raise DataError(f"prediction data: label column {label!r} has a missing value")
        pred = out.reshape(len(target), -1)[:, 0]
        rmse = float(np.sqrt(np.mean((pred - target) ** 2)))
        total = float(np.sum((target - target.mean()) ** 2))
        r2 = 1.0 - float(np.sum((target - pred) ** 2)) / total if total > 0 else math.nan
        return {"rmse": rmse, "r2": r2}


def class_values(names: Sequence[str]) -> np.ndarray:
    """Class names in the training label's type: labels are kept as category texts (1, 1.0 and "1" are one
    class), so names that all read back as integers (or True/False) were a numeric (or boolean) label column
    and are returned as int64 (or bool); any other names stay texts."""
    texts = [str(n) for n in names]
    if texts and set(texts) <= {"True", "False"}:
        return np.asarray([n == "True" for n in texts], dtype=bool)
    try:
        numbers = [int(n) for n in texts]
    except ValueError:
        numbers = []
    if texts and [str(v) for v in numbers] == texts:
        return np.asarray(numbers, dtype=np.int64)
    return np.asarray(texts, dtype=object)


def step_prediction_frame(out: np.ndarray, lengths: Sequence[int], class_names: Sequence[str],
                          proba: bool = False) -> Any:
    """Per-step outputs (cases, padded steps, classes) as long rows: case, step, prediction (and probabilities),
    real steps only. `lengths` are the cases' own lengths; a case longer than the model's keeps its last steps."""
    import pandas as pd

    padded = out.shape[1]
    cases, steps, rows = [], [], []
    for i, length in enumerate(lengths):
        kept = min(int(length), padded)
        cases += [i] * kept
        steps += list(range(int(length) - kept, int(length)))
        rows.append(out[i, :kept])
    values = np.concatenate(rows, axis=0) if rows else np.zeros((0, out.shape[2]))
    names = list(class_names) or [str(i) for i in range(out.shape[2])]
    frame = pd.DataFrame({"case": cases, "step": steps,
                          "prediction": np.asarray(names, dtype=object)[values.argmax(axis=1)]})
    if proba:
        for i, name in enumerate(names):
            frame[f"proba_{name}"] = values[:, i]
    return frame


def prediction_frame(out: np.ndarray, task: str, class_names: Sequence[str], proba: bool = False) -> Any:
    """Model outputs as the `predict` command writes them: a prediction column (and probabilities)."""
    import pandas as pd

    if task != CLASSIFICATION:
        return pd.DataFrame({"prediction": out if out.ndim == 1 else list(out)})
    names = list(class_names) or [str(i) for i in range(out.shape[1])]
    frame = pd.DataFrame({"prediction": np.asarray(names, dtype=object)[out.argmax(axis=1)]})
    if proba:
        for i, name in enumerate(names):
            frame[f"proba_{name}"] = out[:, i]
    return frame


def read_image_array(path: str | Path) -> np.ndarray:
    """Raw images from a .npy file or a .npz archive (key `x`, `images` or `x_test`, else its only array)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: file not found")
    if p.suffix.lower() not in (".npy", ".npz"):
        raise DataError(f"{path}: image models read raw pixels from a .npy or .npz file")
    from nasforge.data.arrays import load_numpy

    loaded = load_numpy(p)
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        keys = list(loaded.keys())
        for key in ("x", "images", "x_test"):
            if key in keys:
                return np.asarray(loaded[key])
        if len(keys) == 1:
            return np.asarray(loaded[keys[0]])
    raise DataError(f"{path}: an .npz archive needs an array named x, images or x_test (has {', '.join(keys)})")


def load_exported(path: str | Path) -> ShippedModel:
    """Open a file written by `nasforge export` (or `nasforge.export.exporter.export`)."""
    return ShippedModel(path)
