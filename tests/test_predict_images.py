"""`predict --study` on an image study: raw pixels in (arrays, npz with labels, class folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nasforge.cli.main import main
from tests.conftest import digits_image_study


@pytest.fixture(scope="module")
def digits_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, np.ndarray, np.ndarray, float]:
    from nasforge.data.loader import load_dataset

    tmp = tmp_path_factory.mktemp("digits")
    storage = f"sqlite:///{tmp / 'img.sqlite'}"
    dconf = digits_image_study(storage)
    dataset = load_dataset(dconf)
    assert dataset.test is not None and dataset.preprocessor is not None
    pre = dataset.preprocessor
    raw = np.round((dataset.test.x * pre.std.reshape(1, -1, 1, 1) + pre.mean.reshape(1, -1, 1, 1)) * pre.scale)
    from nasforge.api import Study

    stored = Study("digits", storage).trial().metrics["test_accuracy"]
    return storage, raw, dataset.test.y, float(stored)


def test_predict_and_evaluate_an_npz_reproduce_the_stored_test_metric(
        digits_study: tuple[str, np.ndarray, np.ndarray, float], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from nasforge.api import Study

    storage, raw, labels, stored = digits_study
    np.savez(tmp_path / "test.npz", x=raw, y=labels)
    predictor = Study("digits", storage).predictor()
    assert predictor.evaluate(tmp_path / "test.npz")["accuracy"] == pytest.approx(stored, abs=1e-9)
    hwc = predictor.predict(raw.transpose(0, 2, 3, 1))  # channels-last arrays are accepted too
    assert list(hwc) == list(predictor.predict(tmp_path / "test.npz"))
    capsys.readouterr()
    assert main(["predict", "--study", "digits", "--storage", storage, "--data", str(tmp_path / "test.npz"),
                 "--evaluate"]) == 0
    assert f"{stored:.4f}"[:5] in capsys.readouterr().out


def test_class_folders_give_labels_and_bad_inputs_one_line(
        digits_study: tuple[str, np.ndarray, np.ndarray, float], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from nasforge.api import Study

    storage, raw, labels, _ = digits_study
    predictor = Study("digits", storage).predictor()
    names = predictor.class_names or tuple(str(i) for i in range(10))
    root = tmp_path / "folders"
    for i in range(12):
        folder = root / names[int(labels[i])]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(raw[i, 0].astype(np.uint8), mode="L").save(folder / f"{i}.png")
    batch = predictor.read(root)
    # files come class by class, by file name within a class
    order = sorted(range(12), key=lambda i: (names[int(labels[i])], f"{i}.png"))
    assert batch.y is not None and batch.y.tolist() == [int(labels[i]) for i in order]
    assert np.array_equal(batch.x[:, 0], raw[order, 0])  # PNG round trip of the 0..16 pixel values
    assert list(predictor.predict(root)) == list(predictor.predict(raw[order]))
    expected = float(np.mean(predictor.predict_raw(raw[order]).argmax(axis=1) == labels[order]))
    assert predictor.evaluate(root)["accuracy"] == pytest.approx(expected)
    np.save(tmp_path / "no_labels.npy", raw[:3])
    capsys.readouterr()
    assert main(["predict", "--study", "digits", "--storage", storage, "--data", str(tmp_path / "no_labels.npy"),
                 "--evaluate"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs labels" in err and len(err.splitlines()) == 1
    assert main(["predict", "--study", "digits", "--storage", storage, "--data", str(tmp_path / "x.csv")]) == 2


def test_predict_reads_the_builtin_images_it_was_searched_on(digits_study, capsys) -> None:
    storage = digits_study[0]
    assert main(["predict", "--study", "digits", "--storage", storage, "--data", "builtin:digits"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "prediction" and len(lines) == 1 + 1797  # every image of the 8x8 digits
    assert main(["predict", "--study", "digits", "--storage", storage, "--data", "builtin:digits", "--evaluate"]) == 0
    assert capsys.readouterr().out.startswith("accuracy=")
