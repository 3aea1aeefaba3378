"""The builtin sequence set (`builtin:cbf`, generated, no file) end to end: a search on it from Python and the
CLI, predict on it, and a sequence study's ensembles, distillation and ensemble export checked against the
study's own models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import nasforge
from nasforge.api import Study
from nasforge.cli.main import main
from nasforge.core.errors import DataError
from nasforge.data.builtin import BuiltinProvider, builtin_frame, builtin_sequences
from nasforge.data.builtin_sequences import CBF_CLASSES, cbf
from nasforge.ensemble.members import kind_of
from nasforge.export.runtime import load_exported

SMALL = {"max_depth": 1, "blocks": ["conv3_16", "gru_16", "transformer_16_h2"]}


def test_cbf_is_generated_the_same_every_time() -> None:
    raw = builtin_sequences("builtin:cbf")
    assert len(raw.cases) == 300 and raw.classes == CBF_CLASSES
    assert all(case.shape == (128, 1) for case in raw.cases)
    assert [raw.labels.count(name) for name in CBF_CLASSES] == [100, 100, 100]
    again = cbf()
    assert all(np.array_equal(a, b) for a, b in zip(raw.cases, again.cases))
    # the legacy RandomState stream is fixed across numpy versions: these values pin the generated set
    assert float(np.sum(raw.cases[0])) == pytest.approx(456.84353844195294, abs=1e-9)
    assert float(raw.cases[299][-1, 0]) == pytest.approx(0.44816814711134706, abs=1e-12)
    assert all(float(np.mean(case[:15])) < 1.0 for case in raw.cases)  # every event starts at step 16 or later
    cylinder, bell, funnel = (raw.cases[i][:, 0] for i in range(3))
    assert cylinder.max() > 3 and bell.max() > 3 and funnel.max() > 3


def test_cbf_loads_as_a_masked_sequence_dataset() -> None:
    data = BuiltinProvider("builtin:cbf", test_fraction=0.2, seed=1).load()
    assert data.spec.input_shape == (128, 2) and data.spec.num_outputs == 3
    assert data.spec.class_names == CBF_CLASSES
    assert data.test is not None and len(data.train) + len(data.valid) + len(data.test) == 300
    assert np.all(data.train.x[:, :, 1] == 1.0)  # equal lengths: every step is real
    assert abs(float(data.train.x[:, :, 0].mean())) < 1e-4  # normalised on the training split
    assert np.bincount(data.test.y).tolist() == [20, 20, 20]
    with pytest.raises(DataError, match="is sequences, not a table"):
        builtin_frame("builtin:cbf")


@pytest.fixture(scope="module")
def cbf_study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    tmp = tmp_path_factory.mktemp("cbf")
    return nasforge.search("builtin:cbf", space="sequence", trials=3, workers=1, epochs=3, test_fraction=0.25,
                           storage=f"sqlite:///{tmp / 'db.sqlite'}", study="cbf", root=str(tmp), seed=2,
                           space_options=SMALL)


@pytest.mark.usefixtures("one_thread")
def test_search_and_predict_on_the_builtin(cbf_study: Study, capsys: pytest.CaptureFixture[str]) -> None:
    searched = [t for t in cbf_study.trials if kind_of(t) == "search"]
    assert len(searched) == 3 and all("test_accuracy" in t.metrics for t in searched)
    storage = cbf_study.store.url
    assert main(["predict", "--study", "cbf", "--storage", storage, "--data", "builtin:cbf"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "prediction" and len(lines) == 301 and set(lines[1:]) <= set(CBF_CLASSES)
    assert main(["predict", "--study", "cbf", "--storage", storage, "--data", "builtin:cbf", "--evaluate"]) == 0
    assert 0.0 <= float(capsys.readouterr().out.split("accuracy=")[1].split()[0]) <= 1.0
    assert main(["predict", "--study", "cbf", "--storage", storage, "--data", "builtin:iris"]) == 2
    assert "is not sequences" in capsys.readouterr().err


def _test_cases() -> tuple[list[np.ndarray], np.ndarray]:
    """The raw cases of the study's test split (and their class indices), as a user would hand them over."""
    from nasforge.data.tabular import split_indices

    raw = builtin_sequences("builtin:cbf")
    labels = np.asarray([CBF_CLASSES.index(v) for v in raw.labels])
    _, _, test = split_indices(len(labels), labels=labels, valid_fraction=0.2, test_fraction=0.25, seed=2,
                               source="builtin:cbf")
    return [raw.cases[i] for i in test], labels[test]


@pytest.mark.usefixtures("one_thread")
def test_ensemble_distill_and_export_of_a_sequence_study(cbf_study: Study, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    cases, labels = _test_cases()
    members = sorted(t.number for t in cbf_study.trials if kind_of(t) == "search")
    ensemble = cbf_study.ensemble(method="average", size=3)
    assert sorted(ensemble.info["members"]) == members
    combined = np.mean([cbf_study.predictor(m).predict_raw(cases) for m in members], axis=0)
    got = cbf_study.predictor(ensemble.number).predict_raw(cases)
    assert np.allclose(got, combined, atol=1e-5)
    assert np.mean(got.argmax(axis=1) == labels) == pytest.approx(ensemble.metrics["test_accuracy"], abs=1e-9)
    greedy = cbf_study.ensemble(method="greedy", size=3, pool=3)
    best_single = max(cbf_study.trial(m).metrics["valid_accuracy"] for m in members)
    assert greedy.metrics["valid_accuracy"] >= best_single

    (student,) = cbf_study.distill(teacher=ensemble.number, loss="mse_softmax", epochs=2)
    assert student.state.value == "complete" and student.parent == ensemble.number
    assert "test_accuracy" in student.metrics
    assert cbf_study.predictor(student.number).predict(cases).shape == (len(cases),)

    storage = cbf_study.store.url
    formats = ["m.pt"] + (["m.onnx"] if importlib.util.find_spec("onnxruntime") is not None else [])
    for name in formats:
        assert main(["export", "--study", "cbf", "--storage", storage, "--ensemble", str(ensemble.number),
                     "--out", str(tmp_path / name)]) == 0
        capsys.readouterr()
        shipped = load_exported(tmp_path / name)
        assert np.max(np.abs(shipped.predict_raw(cases) - combined)) <= 1e-4
        assert main(["predict", "--model", str(tmp_path / name), "--data", "builtin:cbf", "--evaluate"]) == 0
        capsys.readouterr()


@pytest.mark.usefixtures("one_thread")
def test_a_sequence_study_ends_with_its_final_ensemble_when_one_ranks_above_the_best_trial(tmp_path: Path) -> None:
    """`final_ensemble=True` on a per-sequence study: the ensemble is stored only when it ranks above every
    searched trial (objective, then validation loss), and then it is the study's model, read by `predict`."""
    from nasforge.core.ranking import best_key
    from nasforge.ensemble.final import final_ensemble

    study = nasforge.search("builtin:cbf", space="sequence", trials=4, workers=1, epochs=3, test_fraction=0.25,
                            storage=f"sqlite:///{tmp_path / 'db.sqlite'}", study="cbf-final", root=str(tmp_path),
                            seed=3, space_options=SMALL, final_ensemble=True)
    searched = [t for t in study.trials if kind_of(t) == "search"]
    ensembles = [t for t in study.trials if kind_of(t) == "ensemble"]
    assert len(searched) == 4 and len(ensembles) <= 1
    best = study.best_trial
    assert best is not None
    if ensembles:
        (row,) = ensembles
        assert row.info["final"] and len(row.info["members"]) >= 2 and best.number == row.number
        assert all(best_key(row)[:2] > best_key(t)[:2] for t in searched)
        cases, _ = _test_cases()
        members = [study.predictor(int(m)).predict_raw(cases) for m in row.info["members"]]
        combined = np.average(members, axis=0, weights=row.info["weights"])
        assert np.allclose(study.predictor().predict_raw(cases), combined, atol=1e-5)
    else:
        assert kind_of(best) == "search" and final_ensemble(study.store, study.info) is None


@pytest.mark.usefixtures("one_thread")
def test_an_inception_stack_searches_refits_predicts_and_exports(tmp_path: Path) -> None:
    """The Inception block (masked batch norm) through search, a refit on train + valid, predict and export:
    the exported file gives the refit model's outputs, and the refit's test accuracy is what predict scores."""
    study = nasforge.search("builtin:cbf", space="sequence", trials=1, workers=1, epochs=2, test_fraction=0.25,
                            storage=f"sqlite:///{tmp_path / 'db.sqlite'}", study="cbf-inception",
                            root=str(tmp_path), seed=2, batch_size=32,
                            space_options={"max_depth": 1, "blocks": ["inception_16"]})
    (trial,) = [t for t in study.trials if kind_of(t) == "search"]
    assert trial.arch["description"]["blocks"] == ["inception_16"]
    refit = study.train(trial.number, refit=True)
    assert refit.score is None and "valid_accuracy" not in refit.metrics
    # 225 cases (180 train + 45 valid) in batches of 32: 7 steps an epoch (a last batch of one is dropped)
    assert refit.metrics["steps"] == refit.metrics["epochs"] * 7
    cases, labels = _test_cases()
    mine = study.predictor(refit.number).predict_raw(cases)
    assert np.mean(mine.argmax(axis=1) == labels) == pytest.approx(refit.metrics["test_accuracy"], abs=1e-9)
    out = tmp_path / "refit.pt"
    assert main(["export", "--study", "cbf-inception", "--storage", study.store.url, "--trial", str(refit.number),
                 "--out", str(out)]) == 0
    assert np.max(np.abs(load_exported(out).predict_raw(cases) - mine)) <= 1e-4
