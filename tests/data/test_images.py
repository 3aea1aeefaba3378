"""Image providers (IDX, NPZ, image folders), the image preprocessor, and batch augmentation."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasforge.core.errors import ConfigError, DataError
from nasforge.data.augment import Augment, cutout, random_crop, random_flip
from nasforge.data.builtin import BuiltinProvider
from nasforge.data.images import ImagePreprocessor, as_nchw, read_idx
from nasforge.data.loader import data_config, load_dataset, provider


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """An IDX file as the MNIST distribution has them (unsigned bytes, big-endian sizes)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def fake_images(n: int, classes: int, size: tuple[int, ...] = (6, 6), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose brightness encodes their class, so a split's labels can be checked against pixels."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    rng.shuffle(y)
    x = (y[:, None] * 20 + rng.integers(0, 10, (n, int(np.prod(size))))).astype(np.uint8)
    return x.reshape(n, *size), y.astype(np.uint8)


@pytest.fixture
def idx_folder(tmp_path: Path) -> Path:
    x, y = fake_images(100, 5)
    xt, yt = fake_images(20, 5, seed=1)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", x, compress=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", y, compress=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", xt)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", yt)
    return tmp_path


# ----------------------------------------------------------------------------- IDX


def test_idx_folder_detected_and_split(idx_folder: Path) -> None:
    config = data_config(str(idx_folder), header="auto", valid_fraction=0.2, test_fraction=0.0, seed=1)
    assert config["kind"] == "idx" and config["test_images"].endswith("t10k-images-idx3-ubyte")
    assert json.loads(json.dumps(config)) == config and provider(config).config() == config
    data = load_dataset(config)
    assert data.spec.input_shape == (1, 6, 6) and data.spec.num_outputs == 5 and data.spec.task == "classification"
    assert (len(data.train), len(data.valid), len(data.test or [])) == (80, 20, 20)
    assert data.train.x.dtype == np.float32 and data.train.y.dtype == np.int64
    assert np.bincount(data.valid.y).tolist() == [4] * 5  # stratified
    assert abs(float(data.train.x.mean())) < 1e-5 and abs(float(data.train.x.std()) - 1) < 1e-4
    # labels stayed with their images: brightness still orders the classes
    means = [data.train.x[data.train.y == c].mean() for c in range(5)]
    assert means == sorted(means)
    pre = data.preprocessor
    assert isinstance(pre, ImagePreprocessor) and pre.input_shape == (1, 6, 6)
    raw = read_idx(idx_folder / "t10k-images-idx3-ubyte")
    assert data.test is not None
    np.testing.assert_allclose(ImagePreprocessor.from_json(json.loads(json.dumps(pre.to_json()))).transform(raw),
                               data.test.x, rtol=1e-6)


def test_idx_max_train_and_explicit_files(idx_folder: Path) -> None:
    data = load_dataset(data_config(str(idx_folder), max_train=40, seed=3))
    assert (len(data.train), len(data.valid)) == (40, 10)
    assert np.bincount(data.train.y).tolist() == [8] * 5
    # a training images file: its siblings are found; explicit label files override them
    config = data_config(str(idx_folder / "train-images-idx3-ubyte.gz"))
    assert config["kind"] == "idx" and config["train_labels"].endswith("train-labels-idx1-ubyte.gz")
    with pytest.raises(DataError, match="is not the training images file"):
        data_config(str(idx_folder / "t10k-images-idx3-ubyte"))


def test_idx_errors(idx_folder: Path, tmp_path: Path) -> None:
    (idx_folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="no train labels file"):
        provider({"kind": "idx", "path": str(idx_folder)})
    write_idx(idx_folder / "train-labels-idx1-ubyte", np.zeros(99, np.uint8))
    with pytest.raises(DataError, match="100 images but 99 labels"):
        load_dataset(data_config(str(idx_folder)))
    bad = tmp_path / "bad-ubyte"
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(bad)
    write_idx(bad, np.zeros((3, 4, 4), np.uint8))
    bad.write_bytes(bad.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"declares shape \(3, 4, 4\)"):
        read_idx(bad)
    with pytest.raises(ConfigError, match="has its own test set"):
        data_config(str(idx_folder), test_fraction=0.1)


def test_fashion_mnist_real(shared_data: Path) -> None:
    data = load_dataset(data_config(str(shared_data / "fashion_mnist"), max_train=200, seed=0))
    assert data.spec.input_shape == (1, 28, 28) and data.spec.num_outputs == 10
    assert (len(data.train), len(data.valid)) == (200, 50)
    assert data.test is not None and len(data.test) == 10_000
    assert np.bincount(data.train.y).tolist() == [20] * 10


# ----------------------------------------------------------------------------- NPZ


def test_npz_hwc_uint8_and_chw_float(tmp_path: Path) -> None:
    x, y = fake_images(60, 3, size=(5, 5, 3))
    xt, yt = fake_images(9, 3, size=(5, 5, 3), seed=2)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=x, y_train=y.reshape(-1, 1), x_test=xt, y_test=yt, class_names=np.array(["a", "b", "c"]))
    config = data_config(str(path), seed=0)
    assert config["kind"] == "npz"
    data = load_dataset(config)
    assert data.spec.input_shape == (3, 5, 5) and data.spec.class_names == ("a", "b", "c")
    assert data.test is not None and len(data.test) == 9 and len(data.train) + len(data.valid) == 60
    np.testing.assert_allclose(data.preprocessor.transform(xt), data.test.x, rtol=1e-6)
    np.testing.assert_allclose(data.preprocessor.transform(xt[0]), data.test.x[:1], rtol=1e-6)  # one image
    # the same pixels as CHW floats in [0, 1]: same normalised inputs
    chw = tmp_path / "chw.npz"
    np.savez(chw, x_train=x.transpose(0, 3, 1, 2) / 255.0, y_train=y, x_test=xt.transpose(0, 3, 1, 2) / 255.0,
             y_test=yt)
    other = load_dataset(data_config(str(chw)))
    assert other.test is not None
    np.testing.assert_allclose(other.test.x, data.test.x, atol=1e-5)


@pytest.mark.parametrize(("arrays", "message"), [
    ({"x_train": np.zeros((4, 5, 5), np.uint8)}, "missing array"),
    ({"x_train": np.zeros((4, 5, 5), np.uint8), "y_train": np.zeros(3, np.int64)}, "4 images but 3 labels"),
    ({"x_train": np.zeros((4, 5), np.uint8), "y_train": np.zeros(4, np.int64)}, "expected images as"),
    ({"x_train": np.zeros((4, 5, 5), np.uint8), "y_train": np.full(4, -1)}, "non-negative"),
    ({"x_train": np.zeros((4, 5, 5), np.uint8), "y_train": np.zeros(4), "x_test": np.zeros((2, 5, 5))},
     "has x_test without y_test"),
    ({"x_train": np.zeros((4, 5, 5), np.uint8), "y_train": np.zeros(4), "x_test": np.zeros((2, 6, 6), np.uint8),
      "y_test": np.zeros(2)}, "test images have shape"),
])
def test_npz_errors(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(data_config(str(path)))


def test_cifar_subset_real(shared_data: Path) -> None:
    path = shared_data / "cifar10_small" / "cifar10_jpeg_q75_small_5k_1k.npz"
    data = load_dataset(data_config(str(path), max_train=100, valid_fraction=0.5))
    assert data.spec.input_shape == (3, 32, 32) and data.spec.num_outputs == 10
    assert (len(data.train), len(data.valid)) == (100, 100) and data.test is not None and len(data.test) == 1000
    assert np.abs(data.train.x.mean(axis=(0, 2, 3))).max() < 1e-4


# ----------------------------------------------------------------------------- image folders


def _png(path: Path, value: int, size: tuple[int, int] = (6, 6), mode: str = "L") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, 255 - value, 0)
    Image.new(mode, (size[1], size[0]), color).save(path)


def test_image_folder_flat_and_split(tmp_path: Path) -> None:
    for c, name in enumerate(["cat", "dog"]):
        for i in range(6):
            _png(tmp_path / "flat" / name / f"{i}.png", 40 + 100 * c + i)
    (tmp_path / "flat" / "notes.txt").write_text("not an image")
    config = data_config(str(tmp_path / "flat"), valid_fraction=0.25)
    assert config["kind"] == "images"
    data = load_dataset(config)
    assert data.spec.input_shape == (1, 6, 6) and data.spec.class_names == ("cat", "dog")
    assert (len(data.train), len(data.valid)) == (9, 3) and data.test is None
    # train/ and test/ folders, mixed sizes and modes resized to one size and RGB
    for c, name in enumerate(["cat", "dog"]):
        for i in range(4):
            _png(tmp_path / "split" / "train" / name / f"{i}.png", 50 * c + i, size=(8 + i, 8), mode="RGB")
        _png(tmp_path / "split" / "test" / name / "t.jpg", 50 * c)
    data = load_dataset(data_config(str(tmp_path / "split"), size=[4, 5], valid_fraction=0.25))
    assert data.spec.input_shape == (3, 4, 5) and data.test is not None and len(data.test) == 2
    assert data.preprocessor.transform(str(tmp_path / "split" / "test" / "dog" / "t.jpg")).shape == (1, 3, 4, 5)


def test_image_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="is a folder without IDX files"):
        data_config(str(tmp_path / "empty"))
    with pytest.raises(DataError, match="no class folders with image files"):
        load_dataset({"kind": "images", "path": str(tmp_path / "empty")})
    _png(tmp_path / "sizes" / "a" / "1.png", 1, size=(4, 4))
    _png(tmp_path / "sizes" / "b" / "2.png", 1, size=(5, 5))
    with pytest.raises(DataError, match=r"give size=\[H, W\] to resize"):
        load_dataset(data_config(str(tmp_path / "sizes")))
    with pytest.raises(ConfigError, match="size must be a positive integer"):
        data_config(str(tmp_path / "sizes"), size=0)
    with pytest.raises(ConfigError, match="label do not apply to an image folder"):
        data_config(str(tmp_path / "sizes"), label="y")


# ----------------------------------------------------------------------------- builtin digits as images


def test_builtin_digits_as_images() -> None:
    config = data_config("builtin:digits", as_images=True, seed=2)
    assert config["as_images"] is True and "as_images" not in data_config("builtin:digits")
    images = load_dataset(config)
    table = BuiltinProvider("digits", seed=2).load()
    assert images.spec.input_shape == (1, 8, 8) and images.spec.class_names == table.spec.class_names
    np.testing.assert_array_equal(images.valid.y, table.valid.y)  # the same split
    with pytest.raises(ConfigError, match="as_images applies only to builtin:digits"):
        data_config("builtin:iris", as_images=True)


def test_layout_guessing() -> None:
    assert as_nchw(np.zeros((2, 5, 5, 3)), "x").shape == (2, 3, 5, 5)
    assert as_nchw(np.zeros((2, 3, 5, 5)), "x").shape == (2, 3, 5, 5)
    assert as_nchw(np.zeros((2, 3, 3, 3)), "x").shape == (2, 3, 3, 3)
    assert as_nchw(np.zeros((2, 7, 7)), "x").shape == (2, 1, 7, 7)
    with pytest.raises(DataError, match="cannot tell the channel axis"):
        as_nchw(np.zeros((2, 7, 7, 7)), "x")
    pre = ImagePreprocessor([0.5], [0.25], (1, 4, 4))
    with pytest.raises(DataError, match=r"expected images of \(C, H, W\) = \(1, 4, 4\)"):
        pre.transform(np.zeros((2, 3, 3), np.uint8))


# ----------------------------------------------------------------------------- augmentation


def test_augment_shapes_determinism_and_content() -> None:
    x = torch.randn(32, 3, 8, 8)
    augment = Augment.from_options({"crop_padding": 2, "flip": True, "cutout": 3})
    assert augment is not None and augment.to_json() == {"crop_padding": 2, "flip": True, "cutout": 3}
    a = augment(x, torch.Generator().manual_seed(5))
    b = augment(x, torch.Generator().manual_seed(5))
    c = augment(x, torch.Generator().manual_seed(6))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    padded = F.pad(x, (2, 2, 2, 2))
    cropped = random_crop(x, 2, torch.Generator().manual_seed(0))
    assert all(any(torch.equal(padded[i, :, r:r + 8, s:s + 8], cropped[i]) for r in range(5) for s in range(5))
               for i in range(32))
    flipped = random_flip(x, torch.Generator().manual_seed(0))
    same = [torch.equal(flipped[i], x[i]) for i in range(32)]
    assert all(s or torch.equal(flipped[i], x[i].flip(2)) for i, s in enumerate(same)) and 0 < sum(same) < 32
    holes = cutout(torch.ones(32, 1, 8, 8), 3, torch.Generator().manual_seed(0))
    zeros = (holes == 0).sum(dim=(1, 2, 3))
    assert zeros.max() == 9 and zeros.min() >= 1  # a 3x3 square, clipped where it hangs off the border


def test_augment_options() -> None:
    assert Augment.from_options(None) is None
    assert Augment.from_options({"flip": False}) is None  # nothing on
    with pytest.raises(ConfigError, match="unknown option"):
        Augment.from_options({"rotate": 10})
    with pytest.raises(ConfigError, match="crop_padding must be a non-negative integer"):
        Augment.from_options({"crop_padding": -1})
