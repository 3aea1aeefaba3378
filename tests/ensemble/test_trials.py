"""Ensemble and distillation trials through a real (tiny) study: store, leaderboard, show, predict, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nasforge
from nasforge.api import Study
from nasforge.cli.main import main
from nasforge.core.errors import ConfigError, UserError
from nasforge.data.builtin import write_csv
from nasforge.ensemble.combine import softmax
from nasforge.ensemble.members import StudyMembers, ensemble_key, kind_of


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    tmp = tmp_path_factory.mktemp("ens")
    data = write_csv("wine", tmp / "wine.csv")
    return nasforge.search(data, label="target", trials=5, workers=1, epochs=8, test_fraction=0.25,
                           storage=f"sqlite:///{tmp / 'db.sqlite'}", study="wine", root=str(tmp), seed=3)


def _storage(study: Study) -> str:
    return study.store.url


def test_ensemble_trial_round_trips_through_store_and_predict(study: Study) -> None:
    row = study.ensemble(method="average", size=3)
    assert row.info["kind"] == "ensemble" and row.info["combine"] == "probabilities"
    assert len(row.info["members"]) == len(row.info["weights"]) == 3
    assert row.key == ensemble_key(row.info["members"], row.info["weights"], "probabilities")
    assert row.key.startswith("ensemble:") and {"valid_accuracy", "test_accuracy"} <= set(row.metrics)
    members = [study.trial(n) for n in row.info["members"]]
    assert row.params == sum(m.params or 0 for m in members)
    assert study.ensemble(method="average", size=3).number == row.number  # identical: reused, not stored twice
    # predict on the ensemble trial averages its members' probabilities
    frame = pd.read_csv(Path(study.info.artifact_dir) / "test.csv")
    features = frame.drop(columns=["target"])
    combined = np.mean([study.predictor(m.number).predict_raw(features) for m in members], axis=0)
    got = study.predictor(row.number).predict_raw(features)
    assert np.allclose(got, combined, atol=1e-5)
    labels = frame["target"].astype(str).to_numpy()
    accuracy = np.mean(study.predict(features, trial=row.number).astype(str) == labels)
    assert accuracy == pytest.approx(row.metrics["test_accuracy"], abs=1e-9)
    # the stored validation predictions were written beside each member's checkpoint
    assert all((Path(m.checkpoint or "").parent / "predictions.npz").is_file() for m in members)
    board = study.leaderboard()
    entry = next(r for r in board if r["trial"] == row.number)
    assert entry["architecture"].startswith("ensemble average/probabilities")
    assert study.trials_dataframe().set_index("number").loc[row.number, "architecture"].startswith("ensemble")


def test_greedy_and_weighted_are_at_least_the_best_member_on_validation(study: Study) -> None:
    best_single = max(t.metrics["valid_accuracy"] for t in study.trials if kind_of(t) == "search")
    for method in ("greedy", "weighted"):
        row = study.ensemble(method=method, size=4, pool=5, combine="logits")
        assert row.metrics["valid_accuracy"] >= best_single
        assert row.info["combine"] == "logits"


def test_ensemble_outputs_match_combined_logits(study: Study) -> None:
    members = StudyMembers(study.store, study.info)
    row = study.ensemble(method="average", size=2, combine="logits")
    parts = [members.outputs(study.trial(n)).valid for n in row.info["members"]]
    expected = softmax(np.mean(parts, axis=0))
    assert np.allclose(softmax(members.outputs(row).valid), expected, atol=1e-6)


def test_distillation_trial(study: Study) -> None:
    ensemble = study.ensemble(method="average", size=3)
    smallest = min(t.params or 0 for t in study.trials if kind_of(t) == "search")
    rows = study.distill(teacher=ensemble.number, loss="balanced", max_params=smallest, trials=2, epochs=3,
                         lambda_min=0.0, lambda_max=1.0)
    assert [r.info["lambda"] for r in rows] == [0.0, 1.0]
    for r in rows:
        assert r.info["kind"] == "distillation" and r.info["teacher"] == ensemble.number
        assert r.info["loss"] == "balanced" and r.parent == ensemble.number
        assert (r.params or 0) <= smallest and r.state.value == "complete" and "test_accuracy" in r.metrics
        assert not r.key.startswith("dnn:")
        assert study.predictor(r.number).predict(np.zeros((2, 13))).shape == (2,)
    assert study.distill(teacher=ensemble.number, loss="balanced", max_params=smallest, trials=2, epochs=3,
                         lambda_min=0.0, lambda_max=1.0) == []  # stored already: nothing retrained
    with pytest.raises(UserError, match="at most 1 parameters"):
        study.distill(max_params=1)
    with pytest.raises(ConfigError, match="not an ensemble"):
        from nasforge.ensemble.distill import distill

        distill(StudyMembers(study.store, study.info), teacher=rows[0].number, require_ensemble=True)


def test_cli_ensemble_distill_trials_show_predict(study: Study, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    storage = _storage(study)
    assert main(["ensemble", "--study", "wine", "--storage", storage, "--method", "greedy", "--size", "3"]) == 0
    out = capsys.readouterr().out
    number = int(out.split("trial ")[-1].split(":")[0])
    assert main(["trials", "--study", "wine", "--storage", storage, "--format", "json"]) == 0
    board = json.loads(capsys.readouterr().out)
    assert any(r["trial"] == number and r["architecture"].startswith("ensemble greedy") for r in board)
    assert main(["show", "--study", "wine", "--storage", storage, "--trial", str(number)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["info"]["kind"] == "ensemble" and shown["checkpoint"].endswith("ensemble.json")
    test_csv = str(Path(study.info.artifact_dir) / "test.csv")
    assert main(["predict", "--study", "wine", "--storage", storage, "--trial", str(number), "--data", test_csv,
                 "--evaluate"]) == 0
    printed = capsys.readouterr().out
    assert float(printed.split("accuracy=")[1]) == pytest.approx(study.trial(number).metrics["test_accuracy"])
    assert main(["distill", "--study", "wine", "--storage", storage, "--ensemble", str(number), "--loss",
                 "mse_softmax", "--epochs", "2"]) == 0
    assert "complete" in capsys.readouterr().out
    assert main(["distill", "--study", "wine", "--storage", storage, "--teacher", "99"]) == 2
    assert "no trial 99" in capsys.readouterr().err
    assert main(["ensemble", "--study", "wine", "--storage", storage, "--size", "0"]) == 2
    assert main(["ensemble", "--study", "wine", "--storage", storage, "--trials", "1,x"]) == 2


def test_studies_without_trained_models_are_refused(tmp_path: Path) -> None:
    study = nasforge.search(evaluator="synthetic", trials=2, workers=1, storage=f"sqlite:///{tmp_path / 'db'}")
    with pytest.raises(ConfigError, match="train evaluator"):
        study.ensemble()


def _write_idx(path: Path, array: np.ndarray) -> None:
    import gzip
    import struct

    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">i", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_image_study_ensemble_and_distill(tmp_path: Path) -> None:
    """Image inputs have no tabular preprocessor: members and teachers load as bare networks."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = (digits.images * 16).clip(0, 255), digits.target
    folder = tmp_path / "idx"
    folder.mkdir()
    _write_idx(folder / "train-images-idx3-ubyte.gz", images[:1400])
    _write_idx(folder / "train-labels-idx1-ubyte.gz", labels[:1400])
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", images[1400:])
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels[1400:])
    study = nasforge.search(str(folder), trials=3, workers=1, epochs=2, storage=f"sqlite:///{tmp_path / 'db'}",
                            root=str(tmp_path), space_options={"max_depth": 1})
    ensemble = study.ensemble(method="greedy", size=3, pool=3)
    assert "test_accuracy" in ensemble.metrics
    (student,) = study.distill(teacher=ensemble.number, loss="mse_logits", epochs=1)
    assert student.state.value == "complete" and student.parent == ensemble.number
