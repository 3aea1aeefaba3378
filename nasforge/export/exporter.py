"""Export a study's trial (or ensemble trial) as one TorchScript or ONNX file that takes raw inputs.

The file is checked before it is moved into place: it is run (TorchScript with torch, ONNX with
onnxruntime) on a seeded sample of raw inputs that exercises missing values, unseen categories and
every vocabulary entry, and compared with the study's own Python path (`TabularPreprocessor` or
`ImagePreprocessor`, then the PyTorch model). A max abs difference above `TOLERANCE` (relative to the
output's size for regression values) fails the export and leaves no file behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nasforge.core.errors import ConfigError, UserError
from nasforge.data.base import CLASSIFICATION, REGRESSION
from nasforge.export.graph import (
    COMBINES,
    PROBABILITIES,
    ExportedModel,
    ImageInput,
    SequenceInput,
    TabularInput,
    normalised_weights,
)
from nasforge.export.runtime import (
    EXTRA_FILE,
    FORMAT,
    FORMATS,
    INPUT_NAME,
    INSTALL_EXPORT,
    METADATA_KEY,
    ONNX,
    OUTPUT_NAME,
    TORCHSCRIPT,
    VERSION,
    ShippedModel,
    encode_rows,
    sequence_batch,
)

TOLERANCE = 1e-4
INPUT_DTYPES = ("float64", "float32")  # a tabular graph's input; images always take float32
SAMPLE_ROWS = 256
SAMPLE_IMAGES = 16
ENSEMBLE = "ensemble"
TABULAR_FORMAT = "nasforge.tabular"
IMAGE_FORMAT = "nasforge.images"
SEQUENCE_FORMAT = "nasforge.sequence"
ONNX_EXPORTERS = ("auto", "torchscript", "dynamo")
_UNSEEN = "\x00unseen value\x00"  # a category no training file can have


class ExportError(UserError):
    """The exported file does not reproduce the study's model (or cannot be written)."""


@dataclass
class ExportReport:
    """What was exported and how closely the file matches the study's Python model on the check sample."""

    path: str
    format: str
    study: str
    trial: int
    members: list[int]
    sample_size: int
    max_abs_diff: float
    tolerance: float
    onnx_exporter: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _umask_mode() -> int:
    """0666 less the process's umask: the mode `open()` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def format_for(out: str | Path, fmt: str | None) -> str:
    """The format asked for, or the one the file name implies (.onnx, else .pt/.pth/.ts for TorchScript)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    suffix = Path(out).suffix.lower()
    if suffix == ".onnx":
        return ONNX
    if suffix in (".pt", ".pth", ".ts", ".torchscript"):
        return TORCHSCRIPT
    raise ConfigError(f"--out {out}: give --format {' or '.join(FORMATS)} (or name the file .onnx or .pt)")


# ----------------------------------------------------------------------------- choosing what to export


@dataclass
class _Members:
    trial: int
    numbers: list[int]
    weights: list[float]
    combine: str
    models: list[nn.Module]
    payload: dict[str, Any]


def _members(study: Any, trial: int | None, ensemble: int | None) -> _Members:
    from nasforge.core.types import TrialState
    from nasforge.evaluators.train import load_checkpoint

    if trial is not None and ensemble is not None:
        raise ConfigError("give --trial or --ensemble, not both")
    row = study.trial(ensemble if ensemble is not None else trial)
    info = row.info or {}
    if info.get("kind") == ENSEMBLE:
        if row.state != TrialState.COMPLETE:
            raise UserError(f"ensemble trial {row.number} of study {study.name!r} is {row.state.value}, not complete")
        numbers = [int(n) for n in info.get("members") or ()]
        if not numbers:
            raise ConfigError(f"ensemble trial {row.number} of study {study.name!r} lists no members")
        weights = normalised_weights(info.get("weights") or [1.0] * len(numbers))
        if len(weights) != len(numbers):
            raise ConfigError(f"ensemble trial {row.number}: {len(numbers)} members but {len(weights)} weights")
        combine = str(info.get("combine") or PROBABILITIES)
        if combine not in COMBINES:
            raise ConfigError(f"ensemble trial {row.number}: combine must be one of {', '.join(COMBINES)}, "
                              f"got {combine!r}")
    elif ensemble is not None:
        raise ConfigError(f"trial {row.number} of study {study.name!r} is not an ensemble (use --trial)")
    else:
        numbers, weights, combine = [row.number], [1.0], PROBABILITIES
    models: list[nn.Module] = []
    payloads: list[dict[str, Any]] = []
    for number in numbers:
        if len(numbers) > 1 and (study.trial(number).info or {}).get("kind") == ENSEMBLE:
            raise ConfigError(f"ensemble trial {row.number}: member {number} is itself an ensemble; "
                              "export supports ensembles of single models")
        model, payload = load_checkpoint(study._checkpoint(number))
        models.append(model)
        payloads.append(payload)
    first = payloads[0]
    for number, payload in zip(numbers[1:], payloads[1:]):
        if (payload.get("preprocessor") != first.get("preprocessor")
                or payload["data_spec"].get("task") != first["data_spec"].get("task")):
            raise ConfigError(f"ensemble trial {row.number}: member {number} was trained on different data "
                              f"than member {numbers[0]}; members must share their preprocessing")
    return _Members(row.number, numbers, weights, combine, models, first)


# ----------------------------------------------------------------------------- inputs


def _input_module(payload: dict[str, Any], input_dtype: str = "float64") -> tuple[nn.Module, dict[str, Any]]:
    """The graph's preprocessing and the `input` part of the metadata."""
    pre = payload.get("preprocessor")
    task = payload["data_spec"]["task"]
    if task not in (CLASSIFICATION, REGRESSION):
        raise ConfigError(f"export supports classification and regression studies, not {task!r} models")
    kind = pre.get("format") if isinstance(pre, dict) else None
    if kind == TABULAR_FORMAT:
        assert pre is not None
        columns = [dict(spec) for spec in pre["columns"]]
        meta = {"kind": "tabular", "dtype": input_dtype,
                "columns": [{"name": c["name"], "kind": c["kind"], **({"categories": list(c["categories"])}
                                                                     if c["kind"] != "numeric" else {})}
                            for c in columns],
                "preprocessor": pre}
        return TabularInput(columns), meta
    if kind == IMAGE_FORMAT:
        assert pre is not None
        meta = {"kind": "image", "dtype": "float32", "shape": list(pre["input_shape"]), "scale": pre["scale"],
                "mean": list(pre["mean"]), "std": list(pre["std"])}
        return ImageInput(pre["mean"], pre["std"], pre["scale"]), meta
    if kind == SEQUENCE_FORMAT:
        assert pre is not None
        meta = {"kind": "sequence", "dtype": "float32", "length": int(pre["length"]), "channels": len(pre["mean"]),
                "mean": list(pre["mean"]), "std": list(pre["std"])}
        return SequenceInput(pre["mean"], pre["std"]), meta
    raise ConfigError("export needs a model trained on tabular, image or sequence data with its stored preprocessing "
                      f"(this checkpoint has {kind or 'none'})")


def sample_inputs(meta: dict[str, Any], seed: int = 0) -> tuple[np.ndarray, Any]:
    """A seeded check sample: (graph input, the same rows as raw data for the Python path).

    Tabular rows mix typical numbers, missing numbers, every vocabulary entry, unseen and missing
    categories; images are uniform pixels on the training scale.
    """
    rng = np.random.default_rng(seed)
    if meta["kind"] == "image":
        shape = (SAMPLE_IMAGES, *meta["shape"])
        x = np.round(rng.uniform(0.0, float(meta["scale"]), size=shape)).astype(np.float32)
        return x, x
    if meta["kind"] == "sequence":
        length, mean, std = int(meta["length"]), np.asarray(meta["mean"]), np.asarray(meta["std"])
        cases = []
        for n in rng.integers(1, length + 1, size=SAMPLE_IMAGES):
            case = mean + std * rng.standard_normal((int(n), len(mean)))
            case[rng.random(case.shape) < 0.05] = np.nan
            cases.append(case)
        return sequence_batch(cases, length, meta["mean"], "check sample"), cases
    import pandas as pd

    columns = meta["preprocessor"]["columns"]
    raw: dict[str, Any] = {}
    for spec in columns:
        name = spec["name"]
        if spec["kind"] == "numeric":
            values = spec["mean"] + spec["std"] * rng.standard_normal(SAMPLE_ROWS)
            values[rng.random(SAMPLE_ROWS) < 0.1] = np.nan
            raw[name] = values
        else:
            categories = list(spec["categories"])
            picks = rng.integers(0, len(categories) + 1, size=SAMPLE_ROWS)
            texts = np.asarray([*categories, _UNSEEN], dtype=object)[picks]
            texts[rng.random(SAMPLE_ROWS) < 0.1] = None
            raw[name] = texts
    frame = pd.DataFrame(raw)
    return encode_rows(meta["columns"], frame, source="check sample"), frame


def reference_outputs(members: _Members, raw: Any) -> np.ndarray:
    """The study's Python path: stored preprocessing in NumPy/pandas, then the PyTorch model(s)."""
    from nasforge.data.images import ImagePreprocessor
    from nasforge.data.tabular import TabularPreprocessor
    from nasforge.evaluators.metrics import predict_arrays

    pre = members.payload["preprocessor"]
    task = members.payload["data_spec"]["task"]
    if pre["format"] == TABULAR_FORMAT:
        x = TabularPreprocessor.from_json(pre).transform(raw, source="check sample")
    elif pre["format"] == SEQUENCE_FORMAT:
        from nasforge.data.sequence import SequencePreprocessor

        x = SequencePreprocessor.from_json(pre).transform(raw, source="check sample")
    else:
        x = ImagePreprocessor.from_json(pre).normalise(raw)
    total: np.ndarray | None = None
    for weight, model in zip(members.weights, members.models):
        if task == CLASSIFICATION and members.combine != PROBABILITIES:
            with torch.inference_mode():
                out = model(torch.as_tensor(x)).float().numpy().astype(np.float64)
        else:
            out = predict_arrays(model, x, task).astype(np.float64)
            out = out.reshape(len(x), -1)
        total = weight * out if total is None else total + weight * out
    assert total is not None
    if task == CLASSIFICATION and members.combine != PROBABILITIES:
        total = np.exp(total - total.max(axis=1, keepdims=True))
        total = total / total.sum(axis=1, keepdims=True)
    return total


# ----------------------------------------------------------------------------- writing


def _writable_target(out: str | Path) -> Path:
    target = Path(out).expanduser()
    if target.is_dir():
        raise UserError(f"--out {out}: is a directory; give a file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".nasforge-", delete=True):
            pass
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    return target


def _trace(module: nn.Module, example: torch.Tensor) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(module, (example,), check_trace=False)


def _write_torchscript(module: nn.Module, example: torch.Tensor, path: Path, meta: dict[str, Any]) -> None:
    traced = _trace(module, example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(traced, str(path), _extra_files={EXTRA_FILE: json.dumps(meta)})


def _write_onnx(module: nn.Module, example: torch.Tensor, path: Path, meta: dict[str, Any], exporter: str) -> str:
    """Write the ONNX file with the metadata property; returns the torch exporter that worked.

    `auto` tries the TorchScript-based exporter first (about 10x faster here and it needs no onnxscript),
    then the dynamo exporter (torch.export + onnxscript), which is what newer torch versions keep.
    """
    try:
        import onnx
    except ImportError:
        raise ConfigError("ONNX export needs onnx and onnxruntime: " + INSTALL_EXPORT) from None
    if exporter not in ONNX_EXPORTERS:
        raise ConfigError(f"onnx_exporter must be one of {', '.join(ONNX_EXPORTERS)}, got {exporter!r}")
    tried = ["torchscript", "dynamo"] if exporter == "auto" else [exporter]
    errors: list[str] = []
    for name in tried:
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                if name == "torchscript":
                    torch.onnx.export(module, (example,), str(path), input_names=[INPUT_NAME],
                                      output_names=[OUTPUT_NAME], dynamo=False, opset_version=17,
                                      dynamic_axes={INPUT_NAME: {0: "rows"}, OUTPUT_NAME: {0: "rows"}})
                else:
                    torch.onnx.export(module, (example,), str(path), input_names=[INPUT_NAME],
                                      output_names=[OUTPUT_NAME], dynamo=True, external_data=False,
                                      dynamic_shapes=({0: torch.export.Dim("rows")},))
        except Exception as exc:
            errors.append(f"{name}: {str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}")
            continue
        proto = onnx.load(str(path))
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta)
        onnx.save(proto, str(path))
        return name
    raise ExportError("ONNX export failed: " + "; ".join(errors))


def export(study: Any, *, out: str | Path, format: str | None = None, trial: int | None = None,
           ensemble: int | None = None, storage: str | None = None, check: bool = True,
           onnx_exporter: str = "auto", input_dtype: str = "float64") -> ExportReport:
    """Write a study's trial (default: the best) or ensemble trial as one file that takes raw inputs.

    `study` is a name (read from `storage`) or a `nasforge.api.Study` (any `nasforge.stored.StoredStudy`).
    The file is written beside `out` under a temporary name, checked (see the module docstring) and only
    then renamed to `out`.
    `input_dtype` is what a tabular graph takes: float64 (exact), or float32, which most ONNX runtimes
    feed (the graph widens it to float64 first; the check then runs on float32 inputs).
    """
    from nasforge import __version__
    from nasforge.stored import StoredStudy

    fmt = format_for(out, format)
    if input_dtype not in INPUT_DTYPES:
        raise ConfigError(f"--input-dtype {input_dtype!r}: choose {' or '.join(INPUT_DTYPES)}")
    target = _writable_target(out)
    study = study if isinstance(study, StoredStudy) else StoredStudy(str(study), storage)
    members = _members(study, trial, ensemble)
    if members.payload["data_spec"].get("per_step"):
        raise ConfigError(f"study {study.name!r} has one label per step: export of per-step sequence models is "
                          "not supported yet (use `nasforge predict --study`)")
    preprocess, input_meta = _input_module(members.payload, input_dtype)
    spec = members.payload["data_spec"]
    task = spec["task"]
    meta: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "nasforge_version": __version__, "task": task,
        "class_names": list(spec.get("class_names") or ()), "outputs": int(spec["num_outputs"]),
        "output": "probabilities" if task == CLASSIFICATION else "values",
        "input": input_meta, "input_name": INPUT_NAME, "output_name": OUTPUT_NAME,
        "source": {"study": study.name, "trial": members.trial, "members": members.numbers,
                   "weights": members.weights, "combine": members.combine},
    }
    module = ExportedModel(preprocess, members.models, task, members.weights, members.combine).eval()
    x, raw = sample_inputs(input_meta)
    x = x.astype(input_meta["dtype"])  # the check feeds what a user of the file will feed
    example = torch.as_tensor(x[:3])
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".nasforge-export-", suffix=target.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    used: str | None = None
    try:
        if fmt == TORCHSCRIPT:
            _write_torchscript(module, example, tmp, meta)
        else:
            used = _write_onnx(module, example, tmp, meta, onnx_exporter)
        diff = float("nan")
        if check:
            reference = reference_outputs(members, raw)
            got = ShippedModel(tmp).run(x).astype(np.float64).reshape(reference.shape)
            diff = float(np.max(np.abs(got - reference))) if got.size else 0.0
            allowed = TOLERANCE * (max(1.0, float(np.max(np.abs(reference)))) if task == REGRESSION else 1.0)
            if not diff <= allowed:
                raise ExportError(f"the exported {fmt} file differs from the study's model by {diff:.3g} "
                                  f"(max abs, on {len(x)} check inputs; allowed {allowed:.3g}); nothing written")
        os.chmod(tmp, _umask_mode())  # mkstemp's 0600 is for the temporary; a shipped file follows the umask
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ExportReport(path=str(target), format=fmt, study=study.name, trial=members.trial, members=members.numbers,
                        sample_size=len(x), max_abs_diff=diff, tolerance=TOLERANCE, onnx_exporter=used, metadata=meta)
