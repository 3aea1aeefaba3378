"""Image inputs as the models see them: (N, C, H, W) layout, per-channel normalisation, the shared assembly.

Every image provider (`images.py`: IDX, NPZ, image folders) ends in `image_dataset`, so they share one
contract: splits hold float32 (N, C, H, W) arrays normalised per channel with statistics of the training
split only, and `Dataset.preprocessor` is an `ImagePreprocessor` (plain JSON in checkpoints) that turns
raw images (arrays, image files, PIL images) into exactly those inputs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nasforge.core.errors import ConfigError, DataError
from nasforge.data.base import CLASSIFICATION, Dataset, DataSpec, Split, stratified_subset
from nasforge.data.tabular import check_split_options, split_indices

FORMAT = "nasforge.images"
VERSION = 1
_CHUNK = 4096  # images converted at a time: bounds the float64/float32 temporaries


# ----------------------------------------------------------------------------- layout and normalisation


def as_nchw(x: np.ndarray, source: str) -> np.ndarray:
    """A batch of images as (N, C, H, W), guessing HWC vs CHW from which axis looks like channels.

    (N, H, W) is one channel. A 4-D batch is HWC when only its last axis is 1, 3 or 4 long, CHW when
    only axis 1 is; when both are, the square pair of axes decides (images are usually square).
    """
    x = np.asarray(x)
    if x.ndim == 3:
        return x[:, None, :, :]
    if x.ndim != 4:
        raise DataError(f"{source}: expected images as (N, H, W), (N, H, W, C) or (N, C, H, W), "
                        f"got an array of shape {x.shape}")
    last, first = x.shape[3] in (1, 3, 4), x.shape[1] in (1, 3, 4)
    if last and (not first or x.shape[1] == x.shape[2] or x.shape[2] != x.shape[3]):
        return x.transpose(0, 3, 1, 2)
    if first:
        return x
    raise DataError(f"{source}: cannot tell the channel axis of images shaped {x.shape} "
                    "(expected 1, 3 or 4 channels first or last)")


def _scale_of(x: np.ndarray) -> float:
    """uint8 pixels become [0, 1]; other arrays are taken as they are."""
    return 255.0 if x.dtype == np.uint8 else 1.0


class ImagePreprocessor:
    """Raw images -> model inputs: scale to [0, 1] (uint8), then per-channel (x - mean) / std.

    Fitted on the training split; `input_shape` (C, H, W) is checked at prediction time, and `size`
    (H, W) and `channels` say how image files are read (resized, grey or RGB).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], input_shape: Sequence[int],
                 scale: float = 255.0, class_names: Sequence[str] = ()) -> None:
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.scale = float(scale)
        self.class_names = tuple(str(c) for c in class_names)

    @staticmethod
    def fit(x: np.ndarray, class_names: Sequence[str] = (), scale: float | None = None) -> ImagePreprocessor:
        """Per-channel mean and std of (N, C, H, W) images, accumulated in float64 chunks."""
        scale = _scale_of(x) if scale is None else float(scale)
        channels = x.shape[1]
        total = np.zeros(channels)
        squares = np.zeros(channels)
        for i in range(0, x.shape[0], _CHUNK):
            part = x[i:i + _CHUNK].astype(np.float64) / scale
            total += part.sum(axis=(0, 2, 3))
            squares += (part * part).sum(axis=(0, 2, 3))
        count = max(1, x.shape[0] * x.shape[2] * x.shape[3])
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
        std = np.where(std > 1e-6, std, 1.0)  # a constant channel stays centred, not divided by zero
        return ImagePreprocessor(mean.tolist(), std.tolist(), x.shape[1:], scale, class_names)

    @property
    def channels(self) -> int:
        return self.input_shape[0]

    @property
    def size(self) -> tuple[int, int]:
        return self.input_shape[1], self.input_shape[2]

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) raw -> float32 model inputs, chunk by chunk (no full-size float64 copy)."""
        out = np.empty(x.shape, dtype=np.float32)
        mean = self.mean.reshape(1, -1, 1, 1)
        std = self.std.reshape(1, -1, 1, 1)
        for i in range(0, x.shape[0], _CHUNK):
            part = x[i:i + _CHUNK].astype(np.float32)
            part /= self.scale
            part -= mean
            part /= std
            out[i:i + _CHUNK] = part
        return out

    def transform(self, images: Any, *, source: str = "input") -> np.ndarray:
        """Raw images (one or a batch; HWC, CHW or HW; arrays, file paths or PIL images) -> model inputs."""
        if isinstance(images, str | os.PathLike) or (isinstance(images, list | tuple) and images
                                                       and isinstance(images[0], str | os.PathLike)):
            paths = [images] if isinstance(images, str | os.PathLike) else list(images)
            x = read_image_files(paths, self.channels, self.size)
        elif hasattr(images, "convert") and hasattr(images, "size"):  # one PIL image
            x = _pil_array(images, self.channels, self.size)[None]
        else:
            x = self._batch(np.asarray(images), source)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise DataError(f"{source}: images have shape {tuple(x.shape[1:])} after layout conversion; "
                            f"the model expects (C, H, W) = {self.input_shape}")
        return self.normalise(x)

    def _batch(self, x: np.ndarray, source: str) -> np.ndarray:
        c, h, w = self.input_shape
        shape = tuple(x.shape)
        for single in (False, True):
            rest = shape if single else shape[1:]
            expand = (lambda a: a[None]) if single else (lambda a: a)
            if rest == (c, h, w):
                return expand(x)
            if rest == (h, w, c):
                return expand(x).transpose(0, 3, 1, 2)
            if c == 1 and rest == (h, w):
                return expand(x)[:, None]
        raise DataError(f"{source}: expected images of (C, H, W) = {self.input_shape} (or H, W, C), "
                        f"got an array of shape {shape}")

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "mean": [float(v) for v in self.mean],
                "std": [float(v) for v in self.std], "input_shape": list(self.input_shape),
                "scale": self.scale, "class_names": list(self.class_names)}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> ImagePreprocessor:
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise DataError(f"not a {FORMAT} version {VERSION} preprocessor "
                            f"(format={data.get('format')!r}, version={data.get('version')!r})")
        return ImagePreprocessor(data["mean"], data["std"], data["input_shape"], data.get("scale", 255.0),
                                 data.get("class_names", ()))


# ----------------------------------------------------------------------------- shared assembly


def check_labels(y: Any, count: int, source: str) -> np.ndarray:
    """Integer class indices (N,) or (N, 1), non-negative, one per image."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{source}: labels must be one class index per image, got an array of shape {y.shape}")
    if y.shape[0] != count:
        raise DataError(f"{source}: {count} images but {y.shape[0]} labels")
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise DataError(f"{source}: labels must be integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise DataError(f"{source}: labels must be non-negative class indices, found {int(y.min())}")
    return y


def check_image_options(valid_fraction: float, test_fraction: float, seed: int, max_train: int | None) -> None:
    check_split_options(valid_fraction, test_fraction, seed)
    if max_train is not None and (isinstance(max_train, bool) or not isinstance(max_train, int) or max_train < 2):
        raise ConfigError(f"max_train must be an integer of at least 2, got {max_train!r}")


def max_train_rows(labels: np.ndarray, max_train: int | None, held: float, seed: int) -> np.ndarray:
    """Rows of the training file to keep so that about `max_train` remain after carving `held` of them."""
    if max_train is None or len(labels) <= max_train:
        return np.arange(len(labels))
    wanted = min(len(labels), math.ceil(max_train / (1.0 - held)))
    return stratified_subset(labels, len(labels), wanted, seed)


def image_dataset(train: tuple[np.ndarray, np.ndarray], *, name: str,
                  valid: tuple[np.ndarray, np.ndarray] | None = None, test: tuple[np.ndarray, np.ndarray] | None = None,
                  class_names: Sequence[str] = (), valid_fraction: float = 0.2, test_fraction: float = 0.0,
                  max_train: int | None = None, seed: int = 0, source: dict[str, Any] | None = None,
                  scale: float | None = None) -> Dataset:
    """(N, C, H, W) raw images and int labels -> a normalised Dataset (see the module docstring for splits)."""
    x, y = train
    if test is not None and test_fraction > 0:
        raise ConfigError(f"{name}: the data has its own test set; test_fraction does not apply")
    shape = tuple(x.shape[1:])
    for part, pair in (("valid", valid), ("test", test)):
        if pair is not None and tuple(pair[0].shape[1:]) != shape:
            raise DataError(f"{name}: {part} images have shape {tuple(pair[0].shape[1:])} (C, H, W) but "
                            f"training images {shape}")
    held = (0.0 if valid is not None else valid_fraction) + (0.0 if test is not None else test_fraction)
    keep = max_train_rows(y, max_train, held, seed)
    if len(keep) < len(y):
        x, y = x[keep], y[keep]
    train_idx, valid_idx, test_idx = split_indices(
        len(y), labels=y, valid_fraction=0.0 if valid is not None else valid_fraction,
        test_fraction=0.0 if test is not None else test_fraction, seed=seed, source=name)
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {"train": (x[train_idx], y[train_idx])}
    parts["valid"] = valid if valid is not None else (x[valid_idx], y[valid_idx])
    if test is not None:
        parts["test"] = test
    elif test_fraction > 0:
        parts["test"] = (x[test_idx], y[test_idx])
    top = max(int(labels.max()) + 1 if labels.size else 0 for _, labels in parts.values())
    names = tuple(str(c) for c in class_names) or tuple(str(i) for i in range(top))
    if len(names) < top:
        raise DataError(f"{name}: labels go up to {top - 1} but only {len(names)} class names are given")
    if np.unique(parts["train"][1]).size < 2:
        raise DataError(f"{name}: the training split has fewer than two classes")
    pre = ImagePreprocessor.fit(parts["train"][0], names, scale)
    splits = {part: Split(pre.normalise(images), labels) for part, (images, labels) in parts.items()}
    spec = DataSpec(CLASSIFICATION, tuple(int(v) for v in shape), len(names), class_names=names)
    info = dict(source or {})
    info["rows"] = {part: len(split) for part, split in splits.items()}
    info["task"] = CLASSIFICATION
    return Dataset(spec, splits["train"], splits["valid"], splits.get("test"), preprocessor=pre, source=info)


# ----------------------------------------------------------------------------- image files


def _pil_array(image: Any, channels: int | None, size: tuple[int, int] | None) -> np.ndarray:
    """One PIL image -> (C, H, W) uint8, grey or RGB (alpha dropped), resized to (H, W) if asked."""
    from PIL import Image

    mode = "L" if channels == 1 or (channels is None and image.mode in ("1", "L", "LA", "I", "I;16", "F")) else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    if size is not None and (image.height, image.width) != tuple(size):
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def read_image_files(paths: Sequence[str | os.PathLike[str]], channels: int | None = None,
                     size: tuple[int, int] | None = None) -> np.ndarray:
    """Image files -> (N, C, H, W) uint8. Without `channels`, all-grey files give one channel, else RGB."""
    from PIL import Image, UnidentifiedImageError

    arrays = []
    for path in paths:
        try:
            with Image.open(path) as image:
                arrays.append(_pil_array(image, channels, size))
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{path}: cannot read as an image ({exc})") from None
    if not arrays:
        return np.zeros((0, channels or 1, *(size or (1, 1))), dtype=np.uint8)
    if channels is None and len({a.shape[0] for a in arrays}) > 1:
        arrays = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in arrays]
    shapes = {a.shape[1:] for a in arrays}
    if len(shapes) > 1:
        first = arrays[0].shape[1:]
        other = next(i for i, a in enumerate(arrays) if a.shape[1:] != first)
        raise DataError(f"{paths[other]}: is {arrays[other].shape[1]}x{arrays[other].shape[2]} but "
                        f"{paths[0]} is {first[0]}x{first[1]}; give size=[H, W] to resize all images")
    return np.stack(arrays)
