"""Image classification data: IDX files (MNIST, Fashion-MNIST), NPZ arrays and folders of image files.

Every provider ends in `image_dataset`, so they share one contract: splits hold float32 (N, C, H, W)
arrays normalised per channel with statistics of the training split only, and `Dataset.preprocessor`
is an `ImagePreprocessor` (plain JSON in checkpoints) that turns raw images into exactly those inputs.

Splits: a test set shipped with the data (t10k files, `x_test`, a `test/` folder) is used as is and
never carved; otherwise `test_fraction` carves one. Validation is carved from the training images
(`valid_fraction`, stratified, seeded) unless the data ships one (`x_valid`, a `valid/` folder).
`max_train` keeps a seeded stratified subset of about that many training images (plus their share of
validation), for quick searches on big files.
"""

from __future__ import annotations

import gzip
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.core.errors import ConfigError, DataError
from nasforge.data.arrays import load_numpy
from nasforge.data.base import CLASSIFICATION, Dataset, DataSpec, Split, stratified_subset
from nasforge.data.tabular import check_split_options, split_indices

FORMAT = "nasforge.images"
VERSION = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
_CHUNK = 4096  # images converted at a time: bounds the float64/float32 temporaries
# IDX type codes (the third magic byte) -> element types, stored big-endian
_IDX_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
_IDX_NAME = re.compile(r"^(?:.*[-_.])?(train|t10k|test)[-_.](images?|labels?)[-_.]idx(\d)[-_.]ubyte$")


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


# ----------------------------------------------------------------------------- IDX (MNIST format)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """An IDX file (gzip or not, by magic bytes) as a NumPy array of its declared type and shape."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: gzip data is corrupt or truncated ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: IDX header is truncated")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{path}: IDX file declares shape {shape} ({expected} bytes) but has {len(data)} bytes")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def find_idx_files(folder: str | os.PathLike[str]) -> dict[str, str]:
    """Roles (`train_images`, `train_labels`, `test_images`, `test_labels`) -> paths of the IDX files in a folder."""
    found: dict[str, list[str]] = {}
    for entry in sorted(Path(folder).iterdir()):
        if not entry.is_file():
            continue
        match = _IDX_NAME.match(entry.name.lower().removesuffix(".gz"))
        if match:
            split = "train" if match.group(1) == "train" else "test"
            kind = "images" if match.group(2).startswith("image") else "labels"
            found.setdefault(f"{split}_{kind}", []).append(str(entry.resolve()))
    for role, paths in found.items():
        if len(paths) > 1:
            raise DataError(f"{folder}: several IDX files could be the {role.replace('_', ' ')}: "
                            f"{', '.join(Path(p).name for p in paths)}")
    return {role: paths[0] for role, paths in found.items()}


def is_idx_folder(path: str | os.PathLike[str]) -> bool:
    if not Path(path).is_dir():
        return False
    try:
        roles = find_idx_files(path)
    except DataError:
        return True  # ambiguous names: let the provider say so
    return {"train_images", "train_labels"} <= set(roles)


class IDXProvider:
    """MNIST-format files: a folder holding `train-images-idx3-ubyte(.gz)` and friends, or explicit paths.

    The t10k (test) files, when present, are the test split and are never seen by the search.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, train_images: str | None = None,
                 train_labels: str | None = None, test_images: str | None = None, test_labels: str | None = None,
                 valid_fraction: float = 0.2, test_fraction: float = 0.0, max_train: int | None = None,
                 seed: int = 0, class_names: Sequence[str] | None = None) -> None:
        check_image_options(valid_fraction, test_fraction, seed, max_train)
        files: dict[str, str | None] = {"train_images": train_images, "train_labels": train_labels,
                                        "test_images": test_images, "test_labels": test_labels}
        if path is not None:
            folder = Path(path)
            if folder.is_file():  # the training images file: the others are looked for beside it
                match = _IDX_NAME.match(folder.name.lower().removesuffix(".gz"))
                if match and (match.group(1) != "train" or not match.group(2).startswith("image")):
                    raise DataError(f"{path}: is not the training images file; give that file or its folder")
                files["train_images"] = files["train_images"] or str(folder)
                folder = folder.parent
            if not folder.is_dir():
                raise DataError(f"{path}: folder not found")
            for role, found in find_idx_files(folder).items():
                files[role] = files[role] or found
        for role in ("train_images", "train_labels"):
            if not files[role]:
                where = f"in {path}" if path is not None else "(give it as an option)"
                raise DataError(f"IDX data: no {role.replace('_', ' ')} file {where} "
                                f"(expected e.g. {role.replace('_', '-').replace('images', 'images-idx3')}"
                                f"{'' if 'images' in role else '-idx1'}-ubyte.gz)")
        if bool(files["test_images"]) != bool(files["test_labels"]):
            raise DataError(f"IDX data: test images and test labels come together; only "
                            f"{'test_images' if files['test_images'] else 'test_labels'} was found")
        if files["test_images"] and test_fraction > 0:
            raise ConfigError(f"{files['test_images']}: IDX data with test files has its own test set; "
                              "test_fraction does not apply")
        self.files = {role: os.path.abspath(p) if p else None for role, p in files.items()}
        for role, file in self.files.items():
            if file and not os.path.isfile(file):
                raise DataError(f"{file}: file not found ({role})")
        self.valid_fraction = float(valid_fraction)
        self.test_fraction = float(test_fraction)
        self.max_train = max_train
        self.seed = int(seed)
        self.class_names = [str(c) for c in class_names] if class_names else None

    def config(self) -> dict[str, Any]:
        return {"kind": "idx", **self.files, "valid_fraction": self.valid_fraction,
                "test_fraction": self.test_fraction, "max_train": self.max_train, "seed": self.seed,
                "class_names": self.class_names}

    def _pair(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        images_path, labels_path = self.files[f"{split}_images"], self.files[f"{split}_labels"]
        assert images_path and labels_path
        images = as_nchw(read_idx(images_path), images_path)
        return images, check_labels(read_idx(labels_path), len(images), labels_path)

    def load(self) -> Dataset:
        test = self._pair("test") if self.files["test_images"] else None
        name = str(self.files["train_images"])
        return image_dataset(self._pair("train"), test=test, name=name, class_names=self.class_names or (),
                             valid_fraction=self.valid_fraction, test_fraction=self.test_fraction,
                             max_train=self.max_train, seed=self.seed, source=self.config())


# ----------------------------------------------------------------------------- NPZ arrays


class NPZProvider:
    """A NumPy `.npz` with `x_train`, `y_train` and optionally `x_valid`/`y_valid`, `x_test`/`y_test`.

    Images may be (N, H, W), HWC or CHW, uint8 (scaled to [0, 1]) or float (taken as is); an optional
    `class_names` array names the classes.
    """

    def __init__(self, path: str | os.PathLike[str], *, valid_fraction: float = 0.2, test_fraction: float = 0.0,
                 max_train: int | None = None, seed: int = 0, class_names: Sequence[str] | None = None) -> None:
        check_image_options(valid_fraction, test_fraction, seed, max_train)
        self.path = os.path.abspath(path)
        if not os.path.isfile(self.path):
            raise DataError(f"{path}: file not found")
        self.valid_fraction = float(valid_fraction)
        self.test_fraction = float(test_fraction)
        self.max_train = max_train
        self.seed = int(seed)
        self.class_names = [str(c) for c in class_names] if class_names else None

    def config(self) -> dict[str, Any]:
        return {"kind": "npz", "path": self.path, "valid_fraction": self.valid_fraction,
                "test_fraction": self.test_fraction, "max_train": self.max_train, "seed": self.seed,
                "class_names": self.class_names}

    def load(self) -> Dataset:
        archive = load_numpy(self.path)
        if isinstance(archive, np.ndarray):
            raise DataError(f"{self.path}: a single .npy array; a dataset is an .npz with x_train and y_train")
        with archive:
            keys = set(archive.files)
            missing = [k for k in ("x_train", "y_train") if k not in keys]
            if missing:
                raise DataError(f"{self.path}: missing array(s) {', '.join(missing)}; has {', '.join(sorted(keys))}")
            pairs: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
            for split in ("train", "valid", "test"):
                xk, yk = f"x_{split}", f"y_{split}"
                if (xk in keys) != (yk in keys):
                    raise DataError(f"{self.path}: has {xk if xk in keys else yk} without "
                                    f"{yk if xk in keys else xk}")
                if xk not in keys:
                    pairs[split] = None
                    continue
                images = as_nchw(archive[xk], f"{self.path} ({xk})")
                pairs[split] = (images, check_labels(archive[yk], len(images), f"{self.path} ({xk}, {yk})"))
            names = self.class_names or ([str(c) for c in archive["class_names"]] if "class_names" in keys else [])
        train = pairs["train"]
        assert train is not None
        dtypes = {pair[0].dtype for pair in pairs.values() if pair is not None}
        if len(dtypes) > 1:
            raise DataError(f"{self.path}: image arrays mix dtypes ({', '.join(sorted(map(str, dtypes)))})")
        return image_dataset(train, valid=pairs["valid"], test=pairs["test"], name=self.path, class_names=names,
                             valid_fraction=self.valid_fraction, test_fraction=self.test_fraction,
                             max_train=self.max_train, seed=self.seed, source=self.config())


# ----------------------------------------------------------------------------- image folders


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


def _class_folders(root: Path) -> dict[str, list[Path]]:
    classes = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            classes[folder.name] = files
    return classes


def is_image_folder(path: str | os.PathLike[str]) -> bool:
    root = Path(path)
    if not root.is_dir():
        return False
    base = root / "train" if (root / "train").is_dir() else root
    return any(any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir() if f.is_file())
               for d in base.iterdir() if d.is_dir())


def _size_option(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    values = [size, size] if isinstance(size, int) and not isinstance(size, bool) else size
    if (not isinstance(values, list | tuple) or len(values) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values)):
        raise ConfigError(f"size must be a positive integer or [height, width], got {size!r}")
    return int(values[0]), int(values[1])


class ImageFolderProvider:
    """`root/<class>/*.png|jpg...`, or `root/train/<class>/...` with optional `root/valid|val/` and `root/test/`.

    Classes are the training sub-folder names in sorted order. Images of different sizes need `size`
    ([H, W] or one number); `channels` (1 or 3) forces grey or RGB, otherwise all-grey data stays grey.
    """

    def __init__(self, path: str | os.PathLike[str], *, size: int | Sequence[int] | None = None,
                 channels: int | None = None, valid_fraction: float = 0.2, test_fraction: float = 0.0,
                 max_train: int | None = None, seed: int = 0) -> None:
        check_image_options(valid_fraction, test_fraction, seed, max_train)
        self.path = os.path.abspath(path)
        if not os.path.isdir(self.path):
            raise DataError(f"{path}: folder not found")
        self.size = _size_option(size)
        if channels not in (None, 1, 3):
            raise ConfigError(f"channels must be 1 or 3 (or omitted to follow the files), got {channels!r}")
        self.channels = channels
        self.valid_fraction = float(valid_fraction)
        self.test_fraction = float(test_fraction)
        self.max_train = max_train
        self.seed = int(seed)

    def config(self) -> dict[str, Any]:
        return {"kind": "images", "path": self.path, "size": list(self.size) if self.size else None,
                "channels": self.channels, "valid_fraction": self.valid_fraction,
                "test_fraction": self.test_fraction, "max_train": self.max_train, "seed": self.seed}

    def load(self) -> Dataset:
        root = Path(self.path)
        train_root = root / "train" if (root / "train").is_dir() else root
        classes = _class_folders(train_root)
        if not classes:
            raise DataError(f"{train_root}: no class folders with image files "
                            f"({', '.join(IMAGE_SUFFIXES[:3])}, ...) found")
        names = list(classes)
        roots = {"valid": next((root / n for n in ("valid", "val") if (root / n).is_dir()), None)
                 if train_root != root else None,
                 "test": root / "test" if train_root != root and (root / "test").is_dir() else None}
        files = {"train": classes}
        for part, folder in roots.items():
            if folder is not None:
                found = _class_folders(folder)
                unknown = sorted(set(found) - set(classes))
                if unknown:
                    raise DataError(f"{folder}: class folder(s) {', '.join(unknown)} not among the training "
                                    f"classes ({', '.join(names[:8])}{', ...' if len(names) > 8 else ''})")
                if not found:
                    raise DataError(f"{folder}: no class folders with image files")
                files[part] = found
        # read every split with the training split's channel count and size; max_train before reading
        first_paths, first_labels = self._listing(files["train"], names)
        held = (0.0 if "valid" in files else self.valid_fraction) + (0.0 if "test" in files else self.test_fraction)
        keep = max_train_rows(first_labels, self.max_train, held, self.seed)
        first_paths, first_labels = [first_paths[i] for i in keep], first_labels[keep]
        x_train = read_image_files(first_paths, self.channels, self.size)
        channels, size = x_train.shape[1], (x_train.shape[2], x_train.shape[3])
        pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for part in ("valid", "test"):
            if part in files:
                paths, labels = self._listing(files[part], names)
                pairs[part] = (read_image_files(paths, channels, size), labels)
        return image_dataset((x_train, first_labels), valid=pairs.get("valid"), test=pairs.get("test"),
                             name=self.path, class_names=names, valid_fraction=self.valid_fraction,
                             test_fraction=self.test_fraction, max_train=self.max_train, seed=self.seed,
                             source=self.config() | {"image_size": list(size), "channels": channels})

    @staticmethod
    def _listing(found: dict[str, list[Path]], names: list[str]) -> tuple[list[Path], np.ndarray]:
        paths = [p for name in names for p in found.get(name, [])]
        labels = np.asarray([i for i, name in enumerate(names) for _ in found.get(name, [])], dtype=np.int64)
        return paths, labels
