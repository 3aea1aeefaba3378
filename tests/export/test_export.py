"""Exported files (TorchScript, ONNX) reproduce the study's model on raw rows and raw images."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nasforge.cli.main import main
from nasforge.core.errors import ConfigError, DataError, UserError
from nasforge.data.builtin import builtin_frame
from nasforge.export.runtime import category_text, load_exported, read_metadata
from tests.conftest import digits_image_study

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

TOL = 1e-4


@pytest.fixture(scope="module")
def tab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """iris with a text column (with missing values) and missing numbers; a 3-trial search."""
    folder = tmp_path_factory.mktemp("export")
    frame, _ = builtin_frame("iris")
    rng = np.random.default_rng(0)
    colour = np.where(frame["target"] == "setosa", "red", rng.choice(["blue", "green", "red"], len(frame)))
    frame.insert(2, "colour", colour.astype(object))
    frame.loc[rng.random(len(frame)) < 0.1, "colour"] = None
    frame.loc[rng.random(len(frame)) < 0.1, "sepal width (cm)"] = np.nan
    data = folder / "iris_colour.csv"
    frame.to_csv(data, index=False)
    storage = f"sqlite:///{folder / 'db.sqlite'}"
    assert main(["search", "--data", str(data), "--label", "target", "--trials", "3", "--workers", "1",
                 "--epochs", "6", "--test-fraction", "0.3", "--study", "iris", "--storage", storage,
                 "--no-progress"]) == 0
    from nasforge.api import Study

    study = Study("iris", storage)
    test_csv = Path(study.info.artifact_dir) / "test.csv"
    assert test_csv.is_file()
    return {"folder": folder, "storage": storage, "study": study, "test_csv": test_csv}


def _export(tab: dict[str, Any], fmt: str, *extra: str) -> Path:
    out = tab["folder"] / f"model-{fmt}-{'-'.join(extra) or 'best'}.{'onnx' if fmt == 'onnx' else 'pt'}"
    assert main(["export", "--study", "iris", "--storage", tab["storage"], "--format", fmt, "--out", str(out),
                 *extra]) == 0
    return out


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_round_trip_matches_the_study_on_the_test_split(tab: dict[str, Any], fmt: str) -> None:
    path = _export(tab, fmt)
    shipped = load_exported(path)
    predictor = tab["study"].predictor()
    frame = predictor.read(tab["test_csv"])
    expected = predictor.predict_raw(frame)
    got = shipped.predict_raw(shipped.read(tab["test_csv"]))
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= TOL
    assert list(shipped.predict(frame)) == list(predictor.predict(frame))
    assert shipped.evaluate(frame) == pytest.approx(predictor.evaluate(frame), abs=1e-9)
    meta = read_metadata(path)
    assert meta["source"]["trial"] == tab["study"].best_trial.number
    assert [c["kind"] for c in meta["input"]["columns"]].count("categorical") == 1


def test_raw_rows_with_unseen_and_missing_categories(tab: dict[str, Any]) -> None:
    shipped = load_exported(_export(tab, "onnx"))
    predictor = tab["study"].predictor()
    rows = [
        {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "colour": "red", "petal length (cm)": 1.4,
         "petal width (cm)": 0.2},
        {"sepal length (cm)": 6.7, "sepal width (cm)": None, "colour": "purple", "petal length (cm)": 5.0,
         "petal width (cm)": 1.7},
        {"sepal length (cm)": "6.0", "sepal width (cm)": 2.9, "colour": None, "petal length (cm)": 4.5,
         "petal width (cm)": 1.5, "extra": "ignored"},
    ]
    frame = pd.DataFrame(rows)
    expected = predictor.predict_raw(frame.drop(columns=["extra"]).astype({"sepal length (cm)": float}))
    assert np.max(np.abs(shipped.predict_raw(rows) - expected)) <= TOL
    assert np.max(np.abs(shipped.predict_raw(frame) - expected)) <= TOL
    with pytest.raises(DataError, match="missing feature column"):
        shipped.predict_raw([{"colour": "red"}])
    with pytest.raises(DataError, match="must be numeric"):
        shipped.predict_raw(frame.assign(**{"petal width (cm)": "wide"}))


def test_category_text_matches_the_training_spelling() -> None:
    from nasforge.data.tabular import category_text as training_text

    for value in (1, 1.0, 2.5, "1", " a ", True, np.int64(3), np.float32(0.5), float("inf"), -0.0):
        assert category_text(value) == training_text(value)


def test_cli_predict_with_an_onnx_file_does_not_import_torch(tab: dict[str, Any]) -> None:
    path = _export(tab, "onnx")
    out = tab["folder"] / "pred.csv"
    code = (
        "import sys\n"
        "from nasforge.cli.main import main\n"
        f"rc = main(['predict', '--model', {str(path)!r}, '--data', {str(tab['test_csv'])!r}, '--out', "
        f"{str(out)!r}, '--proba'])\n"
        "assert rc == 0, rc\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('no torch')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "no torch" in run.stdout
    predicted = pd.read_csv(out)
    expected = tab["study"].predictor().prediction_frame(tab["study"].predictor().read(tab["test_csv"]), proba=True)
    assert list(predicted["prediction"]) == list(expected["prediction"])
    assert np.max(np.abs(predicted.iloc[:, 1:].to_numpy() - expected.iloc[:, 1:].to_numpy())) <= TOL


def test_onnx_file_for_float32_runtimes(tab: dict[str, Any]) -> None:
    """Issue 17 item 13: most ONNX runtimes feed float32; `--input-dtype float32` makes a graph that takes it."""
    import onnxruntime as ort

    def session(path: Path) -> Any:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    assert session(_export(tab, "onnx")).get_inputs()[0].type == "tensor(double)"  # the exact default
    path = _export(tab, "onnx", "--input-dtype", "float32")
    assert read_metadata(path)["input"]["dtype"] == "float32"
    plain = session(path)
    assert plain.get_inputs()[0].type == "tensor(float)"
    shipped = load_exported(path)
    x = shipped.encode(shipped.read(tab["test_csv"]))
    assert x.dtype == np.float32
    predictor = tab["study"].predictor()
    expected = predictor.predict_raw(predictor.read(tab["test_csv"]))
    got = np.asarray(plain.run(None, {plain.get_inputs()[0].name: x})[0])  # onnxruntime alone, float32 in
    assert np.max(np.abs(got - expected)) <= TOL
    assert np.max(np.abs(shipped.run(x.astype(np.float64)) - expected)) <= TOL, "the runtime casts for the file"


def _add_ensemble(tab: dict[str, Any], members: list[int], weights: list[float], combine: str) -> int:
    from nasforge.core.types import Result, TrialState
    from nasforge.storage.sql import NewTrial

    study = tab["study"]
    info = {"kind": "ensemble", "members": members, "weights": weights, "combine": combine}
    row = study.store.add_finished_trial(
        study.info.id, NewTrial(key=f"ensemble:{json.dumps(info, sort_keys=True)}", arch={}, info=info), seed=0,
        finish=lambda number: Result(state=TrialState.COMPLETE, metrics={}, score=None))
    return int(row.number)


@pytest.mark.parametrize("combine", ["probabilities", "logits"])
def test_ensemble_export(tab: dict[str, Any], combine: str) -> None:
    members, weights = [0, 1, 2], [3.0, 1.0, 0.5]
    number = _add_ensemble(tab, members, weights, combine)
    path = _export(tab, "onnx", "--ensemble", str(number))
    assert read_metadata(path)["source"]["members"] == members
    frame = tab["study"].predictor().read(tab["test_csv"])
    w = np.asarray(weights) / sum(weights)
    outs = []
    for m in members:
        predictor = tab["study"].predictor(m)
        x = predictor.features(frame)
        if combine == "probabilities":
            outs.append(predictor.predict_raw(frame))
        else:
            import torch

            with torch.inference_mode():
                outs.append(predictor.model(torch.as_tensor(x)).numpy())
    total = sum(wi * o for wi, o in zip(w, outs))
    if combine == "logits":
        total = np.exp(total - total.max(axis=1, keepdims=True))
        total /= total.sum(axis=1, keepdims=True)
    got = load_exported(path).predict_raw(frame)
    assert np.max(np.abs(got - total)) <= TOL
    # a TorchScript file of the same ensemble, through --trial (an ensemble trial is exported as one)
    ts = _export(tab, "torchscript", "--trial", str(number))
    assert np.max(np.abs(load_exported(ts).predict_raw(frame) - total)) <= TOL


def test_image_study_takes_raw_pixels(tmp_path: Path) -> None:
    from nasforge.data.loader import load_dataset
    from nasforge.evaluators.metrics import predict_arrays
    from nasforge.export.exporter import export

    storage = f"sqlite:///{tmp_path / 'img.sqlite'}"
    dconf = digits_image_study(storage)
    dataset = load_dataset(dconf)
    assert dataset.test is not None
    pre = dataset.preprocessor
    raw = (dataset.test.x * pre.std.reshape(1, -1, 1, 1) + pre.mean.reshape(1, -1, 1, 1)) * pre.scale
    raw = np.round(raw)  # the pixel values digits really has (0..16)
    from nasforge.api import Study
    from nasforge.evaluators.train import load_checkpoint

    model, _ = load_checkpoint(Study("digits", storage).trial().checkpoint)
    expected = predict_arrays(model, pre.normalise(raw), "classification")
    for fmt in ("onnx", "torchscript"):
        report = export("digits", storage=storage, out=tmp_path / f"digits.{fmt}", format=fmt)
        assert report.max_abs_diff <= TOL
        shipped = load_exported(report.path)
        assert shipped.kind == "image"
        hwc = raw.transpose(0, 2, 3, 1)  # channels-last input is accepted too
        assert np.max(np.abs(shipped.predict_raw(hwc) - expected)) <= TOL
    np.save(tmp_path / "pixels.npy", raw[:5, 0])  # (N, H, W)
    assert main(["predict", "--model", str(tmp_path / "digits.onnx"), "--data", str(tmp_path / "pixels.npy")]) == 0


def test_user_errors_exit_2(tab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    from nasforge.export.exporter import export

    storage, folder = tab["storage"], tab["folder"]
    blocker = folder / "a-file"
    blocker.write_text("x")
    cases = [
        ["export", "--study", "iris", "--storage", storage, "--trial", "99", "--out", str(folder / "x.onnx")],
        ["export", "--study", "nope", "--storage", storage, "--out", str(folder / "x.onnx")],
        ["export", "--study", "iris", "--storage", storage, "--format", "tflite", "--out", str(folder / "x.tfl")],
        ["export", "--study", "iris", "--storage", storage, "--out", str(folder / "x.bin")],
        ["export", "--study", "iris", "--storage", storage, "--out", str(blocker / "sub" / "x.onnx")],
        ["export", "--study", "iris", "--storage", storage, "--out", str(folder)],
        ["export", "--study", "iris", "--storage", storage, "--ensemble", "0", "--out", str(folder / "x.onnx")],
        ["export", "--study", "iris", "--storage", storage, "--trial", "0", "--ensemble", "1", "--out", "x.pt"],
        ["predict", "--model", str(tab["test_csv"]), "--data", str(tab["test_csv"])],
        ["predict", "--model", str(folder / "missing.onnx"), "--data", str(tab["test_csv"])],
        ["predict", "--model", tab["study"].trial().checkpoint, "--data", str(tab["test_csv"])],
        ["predict", "--study", "iris", "--model", "x.onnx", "--data", str(tab["test_csv"])],
        ["predict", "--data", str(tab["test_csv"])],
    ]
    for argv in cases:
        capsys.readouterr()
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own one-line errors (a --format outside the choices)
            code = int(exc.code or 0)
        assert code == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("nasforge") and "Traceback" not in err and len(err.splitlines()) == 1, (argv, err)
    assert not (folder / "x.onnx").exists()
    with pytest.raises(ConfigError):
        export("iris", storage=storage, out=folder / "y.onnx", format="tflite")
    with pytest.raises(UserError):
        export("iris", storage=storage, out=folder / "y.onnx", trial=99)


def test_dynamo_onnx_exporter_also_works(tab: dict[str, Any]) -> None:
    """The fallback path (torch.export + onnxscript), which newer torch versions keep."""
    pytest.importorskip("onnxscript")
    from nasforge.export.exporter import export

    report = export("iris", storage=tab["storage"], out=tab["folder"] / "dynamo.onnx", onnx_exporter="dynamo")
    assert report.onnx_exporter == "dynamo" and report.max_abs_diff <= TOL
    predictor = tab["study"].predictor()
    frame = predictor.read(tab["test_csv"])
    assert np.max(np.abs(load_exported(report.path).predict_raw(frame) - predictor.predict_raw(frame))) <= TOL


def test_regression_study_answers_in_data_units(tmp_path: Path) -> None:
    import nasforge
    from nasforge.export.exporter import export

    study = nasforge.search("builtin:diabetes", trials=1, workers=1, epochs=2, study="diabetes",
                            storage=f"sqlite:///{tmp_path / 'r.sqlite'}", test_fraction=0.2)
    frame, _ = builtin_frame("diabetes")
    report = export(study, out=tmp_path / "diabetes.pt")
    assert report.format == "torchscript"
    shipped = load_exported(report.path)
    expected = study.predictor().predict_raw(frame)
    got = shipped.predict_raw(frame)
    assert got.shape == expected.shape == (len(frame),)
    assert np.max(np.abs(got - expected)) <= TOL * max(1.0, float(np.abs(expected).max()))
    assert set(shipped.evaluate(frame)) == {"rmse", "r2"}
