"""A sequence study end to end from the CLI on a shared .ts set: search (model_search), show --draw, predict
on the raw test .ts with the training preprocessing, --evaluate, export (ONNX, TorchScript) and train."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from nasforge.cli.main import main


@pytest.mark.usefixtures("one_thread")
def test_sequence_study_from_search_to_predict(shared_data: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder = shared_data / "sequence"
    train, test = str(folder / "ItalyPowerDemand_TRAIN.ts"), str(folder / "ItalyPowerDemand_TEST.ts")
    storage = f"sqlite:///{tmp_path / 's.db'}"
    common = ["--study", "ipd", "--storage", storage]
    assert main(["search", "--data", train, "--space", "sequence", "--strategy", "model_search", "--trials", "3",
                 "--workers", "1", "--epochs", "1", "--space-option", "max_depth=2", "--space-option",
                 'blocks=["conv3_16","lstm_16","bilstm_16","transformer_16_h2","gru_16"]', *common]) == 0
    capsys.readouterr()
    assert main(["show", *common, "--draw", str(tmp_path / "best.svg")]) == 0
    assert (tmp_path / "best.svg").stat().st_size > 0
    capsys.readouterr()
    assert main(["predict", *common, "--data", test, "--evaluate"]) == 0
    accuracy = float(capsys.readouterr().out.split("accuracy=")[1].split()[0])
    assert 0.0 <= accuracy <= 1.0
    assert main(["predict", *common, "--data", test, "--out", str(tmp_path / "p.csv")]) == 0
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "prediction" and len(rows) == 1 + 1029 and set(rows[1:]) <= {"1", "2"}
    for name in ("m.onnx", "m.pt"):  # exported, checked against the study's model, same accuracy on raw cases
        if name.endswith(".onnx") and importlib.util.find_spec("onnxruntime") is None:
            continue
        assert main(["export", *common, "--out", str(tmp_path / name)]) == 0
        capsys.readouterr()
        assert main(["predict", "--model", str(tmp_path / name), "--data", test, "--evaluate"]) == 0
        assert float(capsys.readouterr().out.split("accuracy=")[1].split()[0]) == pytest.approx(accuracy, abs=1e-9)
    assert main(["train", *common, "--trial", "0", "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main(["trials", *common, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)


def test_predict_on_a_file_of_other_channels_is_one_line(shared_data: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = shared_data / "sequence"
    storage = f"sqlite:///{tmp_path / 's.db'}"
    common = ["--study", "ipd", "--storage", storage]
    assert main(["search", "--data", str(folder / "ItalyPowerDemand_TRAIN.ts"), "--space", "sequence",
                 "--trials", "1", "--workers", "1", "--epochs", "1", "--space-option", 'blocks=["conv3_16"]',
                 *common]) == 0
    capsys.readouterr()
    assert main(["predict", *common, "--data", str(folder / "BasicMotions_TEST.ts")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "channels" in err[0]
