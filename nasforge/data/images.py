"""Image classification data: IDX files (MNIST, Fashion-MNIST), NPZ arrays and folders of image files.

Every provider ends in `image_dataset`, so they share one contract: splits hold float32 (N, C, H, W)
arrays normalised per channel with statistics of the training split only, and `Dataset.preprocessor`
is an `ImagePreprocessor` (plain JSON in checkpoints) that turns raw images into exactly those inputs.

Splits: a test set shipped with the data (t10k files, `x_test`, a `test/` folder) is used as is and
never carved; otherwise `test_fraction` carves one. Validation is carved from the training images
(`valid_fraction`, stratified, seeded) unless the data ships one (`x_valid`, a `valid/` folder).
`max_train` keeps a seeded stratified subset of about that many training images (plus their share of
validation), for quick searches on big files.

The layout, normalisation, shared assembly and image-file decoding are in `image_prep.py`.
"""

from __future__ import annotations

import gzip
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.core.errors import ConfigError, DataError
from nasforge.data.arrays import load_numpy
from nasforge.data.base import Dataset
from nasforge.data.image_prep import FORMAT as FORMAT  # the moved names, importable from here as before
from nasforge.data.image_prep import ImagePreprocessor as ImagePreprocessor
from nasforge.data.image_prep import as_nchw as as_nchw
from nasforge.data.image_prep import check_image_options, check_labels, max_train_rows
from nasforge.data.image_prep import image_dataset as image_dataset
from nasforge.data.image_prep import read_image_files as read_image_files

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
# IDX type codes (the third magic byte) -> element types, stored big-endian
_IDX_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
_IDX_NAME = re.compile(r"^(?:.*[-_.])?(train|t10k|test)[-_.](images?|labels?)[-_.]idx(\d)[-_.]ubyte$")


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
