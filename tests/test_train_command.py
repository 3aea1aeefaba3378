"""`nasforge train`: final training of a found architecture, and replay files that retrain a trial exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasforge.api import Study, train_replay
from nasforge.cli.main import main
from nasforge.core.types import TrialState
from tests.conftest import digits_image_study

EXACT = ("test_accuracy", "test_loss", "valid_accuracy", "valid_loss", "train_loss")


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("train-store")
    storage = f"sqlite:///{folder / 'db.sqlite'}"
    code = main(["search", "--data", "builtin:iris", "--test-fraction", "0.2", "--trials", "2", "--workers", "1",
                 "--epochs", "2", "--study", "iris", "--storage", storage, "--no-progress"])
    assert code == 0
    return {"storage": storage, "folder": str(folder)}


def _study(searched: dict[str, str]) -> Study:
    return Study("iris", searched["storage"])


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasforge: error: ") and err.count("\n") == 1, err
    return err


def test_final_trial_is_stored_linked_and_usable(searched: dict[str, str], capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    storage = searched["storage"]
    before = {t.number for t in _study(searched).trials}
    capsys.readouterr()
    assert main(["train", "--study", "iris", "--trial", "0", "--epochs", "2", "--seed", "3", "--batch-size", "32",
                 "--lr", "0.01", "--storage", storage]) == 0
    printed = capsys.readouterr()
    assert "stored trial" in printed.out
    assert "epoch 1/2: train_loss" in printed.err and "epoch 2/2:" in printed.err  # progress while it trains
    study = _study(searched)
    new = [t for t in study.trials if t.number not in before]
    assert len(new) == 1
    row = new[0]
    assert row.state == TrialState.COMPLETE and row.parent == 0 and row.seed == 3
    assert row.key.startswith("final:") and row.key != study.trial(0).key
    assert row.info["kind"] == "final" and row.info["of"] == 0 and row.info["epochs"] == 2
    assert row.info["evaluator_config"]["schedule"] == "cosine"
    assert row.info["evaluator_config"]["hparams"] == {"learning_rate": 0.01}
    assert row.arch == study.trial(0).arch
    assert {"valid_accuracy", "test_accuracy"} <= set(row.metrics) and row.metrics["epochs"] == 2.0
    assert row.checkpoint and Path(row.checkpoint).is_file() and f"trials/{row.number}/" in row.checkpoint
    assert len(study.store.intermediate(study.info.id, row.number)) > 0

    assert main(["show", "--study", "iris", "--trial", str(row.number), "--storage", storage]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["info"]["kind"] == "final" and len(shown["curve"]) == 2
    assert main(["trials", "--study", "iris", "--storage", storage, "--format", "json"]) == 0
    assert row.number in {r["trial"] for r in json.loads(capsys.readouterr().out)}
    test_csv = Path(study.info.artifact_dir) / "test.csv"
    assert main(["predict", "--study", "iris", "--trial", str(row.number), "--storage", storage,
                 "--data", str(test_csv), "--evaluate"]) == 0
    assert capsys.readouterr().out.strip() == f"accuracy={row.metrics['test_accuracy']:.6f}"
    out = tmp_path / "final.pt"
    assert main(["export", "--study", "iris", "--trial", str(row.number), "--storage", storage,
                 "--format", "torchscript", "--out", str(out)]) == 0
    assert out.is_file()


def test_same_options_reuse_the_trial_and_same_seed_gives_same_metrics(searched: dict[str, str],
                                                                       tmp_path: Path) -> None:
    study = _study(searched)
    first = study.train(trial=0, epochs=2, seed=5)
    again = study.train(trial=0, epochs=2, seed=5)
    assert again.number == first.number  # stored already: nothing trained twice
    other = study.train(trial=0, epochs=2, seed=6)
    assert other.number != first.number and other.key != first.key
    # the same seed and options trained again from scratch (through its replay file) match to the last bit
    replay = study.write_replay(tmp_path / "final.json", trial=first.number)
    twin = train_replay(replay, storage=searched["storage"])
    assert twin.number not in (first.number, other.number)
    assert twin.info["kind"] == "replay" and twin.parent == first.number
    for name in EXACT:
        assert twin.metrics[name] == first.metrics[name], name


def test_replay_round_trip_reproduces_the_searched_trial(searched: dict[str, str], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    storage = searched["storage"]
    replay = tmp_path / "trial0.json"
    capsys.readouterr()
    assert main(["show", "--study", "iris", "--trial", "0", "--storage", storage, "--replay", str(replay)]) == 0
    data = json.loads(replay.read_text())
    assert data["space"] == "dnn" and data["evaluator"] == "train" and data["study"]["name"] == "iris"
    assert data["evaluator_config"]["epochs"] == 2 and data["evaluator_config"]["data"]
    original = _study(searched).trial(0)
    assert data["seed"] == original.seed and data["architecture"] == original.arch
    capsys.readouterr()
    assert main(["train", "--replay", str(replay), "--storage", storage]) == 0
    assert "stored trial" in capsys.readouterr().out
    study = _study(searched)
    row = max(study.trials, key=lambda t: t.number)
    assert row.info["kind"] == "replay" and row.parent == 0 and row.key.startswith("replay:")
    for name in EXACT:
        assert row.metrics[name] == original.metrics[name], name
    # into a fresh storage: the study is made from the file's settings, and the result is the same
    fresh = f"sqlite:///{tmp_path / 'other.sqlite'}"
    assert main(["train", "--replay", str(replay), "--storage", fresh]) == 0
    elsewhere = Study("iris", fresh).trials
    assert len(elsewhere) == 1 and elsewhere[0].parent is None
    assert elsewhere[0].metrics["test_accuracy"] == original.metrics["test_accuracy"]
    assert elsewhere[0].metrics["test_loss"] == original.metrics["test_loss"]


def test_resumed_search_counts_final_trials_like_ensembles(searched: dict[str, str]) -> None:
    study = _study(searched)
    study.train(trial=1, epochs=1, seed=0)
    total = len(study.trials)
    searched_rows = [t for t in study.trials if t.info.get("kind", "search") == "search"]
    assert main(["search", "--data", "builtin:iris", "--test-fraction", "0.2", "--trials", "2", "--workers", "1",
                 "--epochs", "2", "--study", "iris", "--storage", searched["storage"], "--no-progress"]) == 0
    assert len(_study(searched).trials) == total  # --trials is a total; final trials count, as ensembles do
    assert main(["search", "--data", "builtin:iris", "--test-fraction", "0.2", "--trials", str(total + 1),
                 "--workers", "1", "--epochs", "2", "--study", "iris", "--storage", searched["storage"],
                 "--no-progress"]) == 0
    after = _study(searched).trials
    assert len(after) == total + 1
    assert len([t for t in after if t.info.get("kind", "search") == "search"]) == len(searched_rows) + 1


def test_bad_input_is_one_line_and_exit_2(searched: dict[str, str], capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    storage = searched["storage"]
    count = len(_study(searched).trials)
    assert "no study named" in _error(capsys, ["train", "--study", "nope", "--trial", "0", "--epochs", "1",
                                               "--storage", storage])
    assert "has no trial 999" in _error(capsys, ["train", "--study", "iris", "--trial", "999", "--epochs", "1",
                                                 "--storage", storage])
    assert "--epochs" in _error(capsys, ["train", "--study", "iris", "--trial", "0", "--storage", storage])
    assert "--epochs" in _error(capsys, ["train", "--study", "iris", "--trial", "0", "--epochs", "0",
                                         "--storage", storage])
    assert "--lr" in _error(capsys, ["train", "--study", "iris", "--trial", "0", "--epochs", "1", "--lr", "-1",
                                     "--storage", storage])
    assert "image data" in _error(capsys, ["train", "--study", "iris", "--trial", "0", "--epochs", "1",
                                           "--augment", "flip=true", "--storage", storage])
    assert "unknown option" in _error(capsys, ["train", "--study", "iris", "--trial", "0", "--epochs", "1",
                                               "--augment", "rotate=3", "--storage", storage])
    assert "file not found" in _error(capsys, ["train", "--replay", str(tmp_path / "missing.json"),
                                               "--storage", storage])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "not a JSON file" in _error(capsys, ["train", "--replay", str(bad), "--storage", storage])
    bad.write_text("[1, 2]")
    assert "not a nasforge replay file" in _error(capsys, ["train", "--replay", str(bad), "--storage", storage])
    good = tmp_path / "good.json"
    assert main(["show", "--study", "iris", "--trial", "0", "--storage", storage, "--replay", str(good)]) == 0
    data = json.loads(good.read_text())
    bad.write_text(json.dumps({k: v for k, v in data.items() if k != "architecture"}))
    assert "missing field(s) architecture" in _error(capsys, ["train", "--replay", str(bad), "--storage", storage])
    bad.write_text(json.dumps({**data, "seed": "x"}))
    assert "'seed'" in _error(capsys, ["train", "--replay", str(bad), "--storage", storage])
    bad.write_text(json.dumps({**data, "architecture": {"space": "dnn", "tokens": [999]}}))
    assert "--replay" in _error(capsys, ["train", "--replay", str(bad), "--storage", storage])
    bad.write_text(json.dumps({**data, "evaluator_config": {**data["evaluator_config"], "lr": -2}}))
    assert "lr" in _error(capsys, ["train", "--replay", str(bad), "--storage", storage])
    assert "drop --epochs" in _error(capsys, ["train", "--replay", str(good), "--epochs", "3", "--storage", storage])
    assert len(_study(searched).trials) == count  # nothing stored by any of these


def test_final_training_of_an_image_study_takes_augmentation(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'img.sqlite'}"
    digits_image_study(storage)
    row = Study("digits", storage).train(trial=0, epochs=1, augment={"crop_padding": 1, "flip": True})
    assert row.state == TrialState.COMPLETE and row.info["augment"] == {"crop_padding": 1, "flip": True}
    assert row.info["evaluator_config"]["augment"] == {"crop_padding": 1, "flip": True}
    assert "test_accuracy" in row.metrics and row.checkpoint and Path(row.checkpoint).is_file()


def test_refit_trains_on_train_and_valid_and_never_ranks_as_best(searched: dict[str, str],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import math

    from nasforge.evaluators.train import TrainEvaluator

    storage = searched["storage"]
    study = _study(searched)
    best_before = study.best_trial
    assert best_before is not None
    capsys.readouterr()
    assert main(["train", "--study", "iris", "--trial", "0", "--refit", "--storage", storage]) == 0
    assert "no validation score" in capsys.readouterr().out
    study = _study(searched)
    row = max(study.trials, key=lambda t: t.number)
    assert row.state == TrialState.COMPLETE and row.score is None and row.info["refit"] is True
    assert row.info["evaluator_config"]["refit"] is True and row.metrics["refit"] == 1.0
    assert not [k for k in row.metrics if k.startswith("valid_")] and "test_accuracy" in row.metrics
    data = TrainEvaluator(**study.config["evaluator_config"]).dataset()
    share = len(data.valid) / (len(data.train) + len(data.valid))
    source = study.trial(0).metrics["best_epoch"]
    assert row.info["epochs"] == math.ceil(source / (1 - share) - 1e-9) == row.metrics["epochs"]
    assert row.metrics["best_epoch"] == row.metrics["epochs"]  # the last epoch is kept
    per_epoch = math.ceil((len(data.train) + len(data.valid)) / 128)  # the study's batch size: one step per epoch
    assert row.metrics["steps"] == row.metrics["epochs"] * per_epoch
    assert study.best_trial is not None and study.best_trial.number == best_before.number
    # a plain final training of the refit trial trains on the training split again
    plain = study.train(trial=row.number, epochs=1)
    assert "refit" not in plain.info["evaluator_config"] and "valid_accuracy" in plain.metrics
    assert study.train(trial=0, refit=True).number == row.number  # the same refit is stored already


def test_refit_bad_input(searched: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from nasforge.core.errors import ConfigError
    from nasforge.evaluators.train import TrainEvaluator

    storage = searched["storage"]
    replay = _study(searched).write_replay(tmp_path / "r.json", trial=0)
    assert "drop --refit" in _error(capsys, ["train", "--replay", str(replay), "--refit", "--storage", storage])
    assert "--epochs" in _error(capsys, ["train", "--study", "iris", "--trial", "0", "--storage", storage])
    with pytest.raises(ConfigError, match="patience must be null"):
        TrainEvaluator(refit=True, patience=3)
    with pytest.raises(ConfigError, match="refit must be true or false"):
        TrainEvaluator(refit="yes", patience=None)
