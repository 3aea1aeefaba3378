"""Using a found model: raw rows in, labels or values out, with the training-time preprocessing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nasforge.core.errors import DataError
from nasforge.data.base import CLASSIFICATION
from nasforge.export.runtime import SequenceBatch, read_sequence_batch


@dataclass(frozen=True)
class ImageBatch:
    """Raw images read from a file or folder, with their labels when the source has them."""

    x: np.ndarray
    y: np.ndarray | None = None


class Predictor:
    """A trained model plus the preprocessing fitted on its training data."""

    def __init__(self, model: Any, payload: dict[str, Any]) -> None:
        from nasforge.data.images import FORMAT as IMAGE_FORMAT
        from nasforge.data.images import ImagePreprocessor
        from nasforge.data.sequence import FORMAT as SEQUENCE_FORMAT
        from nasforge.data.sequence import SequencePreprocessor
        from nasforge.data.tabular import TabularPreprocessor

        self.model = model
        self.payload = payload
        self.task: str = payload["data_spec"]["task"]
        raw = payload.get("preprocessor")
        self.images = ImagePreprocessor.from_json(raw) if raw and raw.get("format") == IMAGE_FORMAT else None
        self.sequences = (SequencePreprocessor.from_json(raw) if raw and raw.get("format") == SEQUENCE_FORMAT
                          else None)
        self.preprocessor = (TabularPreprocessor.from_json(raw) if raw and self.images is None
                             and self.sequences is None else None)
        self.class_names: tuple[str, ...] = tuple(payload["data_spec"].get("class_names") or ())
        self.per_step = bool(payload["data_spec"].get("per_step", False))  # one label per step

    # ---- inputs --------------------------------------------------------------------------
    def read(self, path: str | Path) -> Any:
        """A CSV/TSV (optionally .gz) with the training file's columns; the label column is optional.
        `builtin:NAME` reads that builtin dataset whole, as `search --data builtin:NAME` does.

        Image models read a .npy/.npz array of raw images (labels from an npz's `y`/`labels`), image
        files, or a folder of class subfolders (labels from the folder names). Sequence models read a
        `.ts`, `.npz` or long CSV (see `read_sequence_batch`)."""
        from nasforge.data.builtin import builtin_frame, builtin_images, is_builtin
        from nasforge.data.csv import read_features_frame

        if self.sequences is not None:
            return read_sequence_batch(path, step_labels=self.per_step)
        if is_builtin(path):
            return ImageBatch(*builtin_images(str(path))) if self.images is not None else builtin_frame(str(path))[0]
        if self.images is not None:
            return self._read_images(Path(path))
        if self.preprocessor is None:
            return read_features_frame(str(path))
        return read_features_frame(str(path), file_columns=self.preprocessor.file_columns,
                                   label=self.preprocessor.label)

    def _read_images(self, path: Path) -> ImageBatch:
        from nasforge.data.images import IMAGE_SUFFIXES, _class_folders, read_image_files

        assert self.images is not None
        if path.is_dir():
            classes = _class_folders(path)
            if not classes:
                raise DataError(f"{path}: no class subfolders with images in it")
            unknown = sorted(set(classes) - set(self.class_names))
            if self.class_names and unknown:
                raise DataError(f"{path}: folders {', '.join(unknown[:5])} are not classes of this model")
            index = {name: i for i, name in enumerate(self.class_names or sorted(classes))}
            files = [f for name in sorted(classes) for f in classes[name]]
            labels = np.array([index[name] for name in sorted(classes) for _ in classes[name]], dtype=np.int64)
            return ImageBatch(read_image_files(files, self.images.channels, self.images.size), labels)
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            return ImageBatch(read_image_files([path], self.images.channels, self.images.size))
        if suffix not in (".npy", ".npz"):
            raise DataError(f"{path}: image models read .npy/.npz arrays, image files or class folders")
        from nasforge.export.runtime import read_image_array

        x = read_image_array(path)
        y = None
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                for key in ("y", "labels", "y_test"):
                    if key in archive:
                        y = np.asarray(archive[key]).reshape(-1).astype(np.int64)
                        break
        return ImageBatch(x, y)

    def features(self, data: Any) -> np.ndarray:
        if isinstance(data, (str, Path)):
            data = self.read(data)
        if self.sequences is not None:
            cases = data.cases if isinstance(data, SequenceBatch) else list(data)
            return self.sequences.transform(cases, source="prediction data")
        if self.images is not None:
            return self.images.transform(data.x if isinstance(data, ImageBatch) else data, source="prediction data")
        if self.preprocessor is None:
            return np.asarray(data, dtype=np.float32)
        if isinstance(data, np.ndarray):
            columns = list(self.preprocessor.input_columns)
            if data.ndim != 2 or data.shape[1] != len(columns):
                raise DataError(f"expected rows of {len(columns)} raw features ({', '.join(columns[:5])}...), "
                                f"got an array of shape {data.shape}")
            data = pd.DataFrame(data, columns=columns)
        if not isinstance(data, pd.DataFrame):
            raise DataError(f"cannot predict on {type(data).__name__}: give a file path, a DataFrame or an array")
        return self.preprocessor.transform(data, source="prediction data")

    # ---- outputs -------------------------------------------------------------------------
    def predict_raw(self, data: Any) -> np.ndarray:
        """Class probabilities for classification, values for regression."""
        from nasforge.evaluators.metrics import predict_arrays

        return predict_arrays(self.model, self.features(data), self.task)

    def predict(self, data: Any) -> np.ndarray:
        """Class values per case (or values); a per-step model gives one per real step, cases in order (the
        `prediction` column of `prediction_frame`)."""
        if self.per_step:
            return self.prediction_frame(data)["prediction"].to_numpy()
        out = self.predict_raw(data)
        if self.task != CLASSIFICATION:
            return out
        indices = out.argmax(axis=1)
        if self.class_names:
            from nasforge.export.runtime import class_values

            return class_values(self.class_names)[indices]
        return indices

    def _step_accuracy(self, data: Any, index: dict[str, int]) -> float:
        """Accuracy over the real steps of per-step labelled cases (an .npz with y (cases, steps), a long CSV)."""
        from nasforge.evaluators.metrics import accuracy

        assert self.sequences is not None
        if not isinstance(data, SequenceBatch) or data.step_labels is None:
            raise DataError("--evaluate on a per-step model needs one label per step (an .npz with y of shape "
                            "(cases, steps), or a long CSV with a label on every row)")
        unknown = sorted({str(v) for s in data.step_labels for v in s} - set(index))
        if unknown:
            raise DataError(f"--evaluate: class(es) {', '.join(unknown[:5])} are not classes of this model")
        y = self.sequences.transform_labels(data.step_labels, index)
        return accuracy(y, self.predict_raw(data))

    def prediction_frame(self, data: Any, proba: bool = False) -> pd.DataFrame:
        from nasforge.export.runtime import prediction_frame, step_prediction_frame

        if self.per_step:  # long rows: case, step, prediction, real steps only
            if isinstance(data, (str, Path)):
                data = self.read(data)
            cases = data.cases if isinstance(data, SequenceBatch) else list(data)
            return step_prediction_frame(self.predict_raw(cases), [len(c) for c in cases], self.class_names, proba)  # type: ignore[no-any-return]
        frame: pd.DataFrame = prediction_frame(self.predict_raw(data), self.task, self.class_names, proba)
        return frame

    def evaluate(self, data: Any) -> dict[str, float]:
        """The test metrics of the training evaluator, on a labelled file or DataFrame."""
        from nasforge.evaluators.metrics import accuracy, r2, rmse

        if isinstance(data, (str, Path)):
            data = self.read(data)
        if self.sequences is not None:
            index = {name: i for i, name in enumerate(self.sequences.class_names)}
            if self.per_step:
                return {"accuracy": self._step_accuracy(data, index)}
            if not isinstance(data, SequenceBatch) or data.labels is None:
                raise DataError("--evaluate on a sequence model needs labelled cases (a .ts or .npz with labels)")
            unknown = sorted(set(data.labels) - set(index))
            if unknown:
                raise DataError(f"--evaluate: class(es) {', '.join(unknown[:5])} are not classes of this model")
            y = np.asarray([index[v] for v in data.labels], dtype=np.int64)
            return {"accuracy": accuracy(y, self.predict_raw(data).argmax(axis=1))}
        if self.images is not None:
            if not isinstance(data, ImageBatch) or data.y is None:
                raise DataError("--evaluate on an image model needs labels: an .npz with x and y, or class folders")
            if len(data.y) != len(data.x):
                raise DataError(f"--evaluate: {len(data.x)} images but {len(data.y)} labels")
            return {"accuracy": accuracy(data.y, self.predict_raw(data).argmax(axis=1))}
        if self.preprocessor is None or not isinstance(data, pd.DataFrame):
            raise DataError("--evaluate needs a labelled CSV with the training file's columns")
        if self.preprocessor.label not in data.columns:
            raise DataError(f"--evaluate: the file has no label column {self.preprocessor.label!r}")
        y = self.preprocessor.encode_labels(data, source="prediction data")
        out = self.predict_raw(data)
        if self.task == CLASSIFICATION:
            return {"accuracy": accuracy(y, out.argmax(axis=1))}
        return {"rmse": rmse(y, out), "r2": r2(y, out)}


def load_predictor(checkpoint: str | Path) -> Predictor:
    """A model checkpoint, or an ensemble trial's manifest (its members combined, as one model)."""
    from nasforge.evaluators.train import load_checkpoint

    if str(checkpoint).endswith(".json"):
        from nasforge.ensemble.members import load_ensemble

        model, payload = load_ensemble(checkpoint)
        return Predictor(model, payload)
    model, payload = load_checkpoint(checkpoint)
    return Predictor(model, payload)
