"""The command line as a user meets it: a search, its results, predictions, and bad input."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nasforge.cli.main import main
from nasforge.data.builtin import write_csv


@pytest.fixture(scope="module")
def iris_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("iris")
    return Path(write_csv("iris", folder / "iris.csv"))


@pytest.fixture(scope="module")
def searched(iris_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("store")
    storage = f"sqlite:///{folder / 'db.sqlite'}"
    code = main(["search", "--data", str(iris_csv), "--label", "target", "--trials", "4", "--workers", "1",
                 "--epochs", "15", "--test-fraction", "0.3", "--study", "iris", "--storage", storage,
                 "--no-progress", "--owner", "ana"])
    assert code == 0
    return {"storage": storage, "folder": str(folder)}


def test_search_prints_a_leaderboard(searched: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trials", "--study", "iris", "--storage", searched["storage"]]) == 0
    out = capsys.readouterr().out
    assert "valid_accuracy" in out and "test_accuracy" in out and "rank" in out


def test_trials_formats_and_studies(searched: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    main(["trials", "--study", "iris", "--storage", searched["storage"], "--format", "json"])
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4 and rows[0]["rank"] == 1
    assert rows[0]["valid_accuracy"] >= rows[-1]["valid_accuracy"]
    main(["trials", "--study", "iris", "--storage", searched["storage"], "--format", "csv"])
    assert capsys.readouterr().out.startswith("rank,trial,state")
    main(["studies", "--storage", searched["storage"]])
    out = capsys.readouterr().out
    assert "iris" in out and "ana" in out


def test_show_a_trial(searched: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["show", "--study", "iris", "--storage", searched["storage"]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["state"] == "complete" and shown["curve"] and Path(shown["checkpoint"]).is_file()
    assert shown["architecture"]["space"] == "dnn"


def test_predict_evaluate_reproduces_the_stored_test_metric(
        searched: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    con = sqlite3.connect(searched["storage"].removeprefix("sqlite:///"))
    folder = Path(con.execute("select artifact_dir from studies where name='iris'").fetchone()[0])
    test_csv = folder / "test.csv"
    assert test_csv.is_file(), "the carved test split is saved beside the study"
    capsys.readouterr()
    assert main(["show", "--study", "iris", "--storage", searched["storage"]]) == 0
    stored = json.loads(capsys.readouterr().out)["metrics"]["test_accuracy"]
    assert main(["predict", "--study", "iris", "--storage", searched["storage"], "--data", str(test_csv),
                 "--evaluate"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == f"accuracy={stored:.6f}"


def test_predict_writes_labels(searched: dict[str, str], iris_csv: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(iris_csv).drop(columns=["target"])
    unlabelled = tmp_path / "new.csv"
    frame[list(reversed(frame.columns))].to_csv(unlabelled, index=False)  # any column order
    out = tmp_path / "pred.csv"
    assert main(["predict", "--study", "iris", "--storage", searched["storage"], "--data", str(unlabelled),
                 "--out", str(out), "--proba"]) == 0
    pred = pd.read_csv(out)
    assert len(pred) == len(frame)
    assert set(pred["prediction"]) <= {"setosa", "versicolor", "virginica"}
    assert {"proba_setosa", "proba_versicolor", "proba_virginica"} <= set(pred.columns)


def test_config_file(iris_csv: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "search.yaml"
    cfg.write_text(f"data: {iris_csv}\nlabel: target\ntrials: 2\nworkers: 1\nepochs: 2\nstudy: fromfile\n"
                   f"storage: sqlite:///{tmp_path / 'db.sqlite'}\nspace-options:\n  max_depth: 2\n")
    assert main(["search", "--config", str(cfg), "--trials", "3", "--no-progress"]) == 0
    con = sqlite3.connect(tmp_path / "db.sqlite")
    assert con.execute("select count(*) from trials").fetchone()[0] == 3  # the flag beat the file


BAD = {
    "missing file": (["--data", "{tmp}/nope.csv"], "file not found"),
    "empty file": (["--data", "{tmp}/empty.csv"], "empty"),
    "header only": (["--data", "{tmp}/header.csv"], "no data rows"),
    "label missing": (["--data", "{tmp}/good.csv", "--label", "nope"], "label column 'nope' not found"),
    "label index out of range": (["--data", "{tmp}/good.csv", "--label", "7"], "out of range"),
    "regression label not numeric": (["--data", "{tmp}/good.csv", "--label", "y", "--task", "regression"],
                                     "not numeric"),
    "ragged rows": (["--data", "{tmp}/ragged.csv"], "fields"),
    "all-missing column": (["--data", "{tmp}/holes.csv", "--label", "y"], "empty (all values missing)"),
    "one class": (["--data", "{tmp}/oneclass.csv", "--label", "y"], "only one class"),
    "unknown space": (["--data", "{tmp}/good.csv", "--space", "nope"], "unknown space 'nope'"),
    "unknown strategy": (["--data", "{tmp}/good.csv", "--strategy", "nope"], "unknown strategy 'nope'"),
    "zero trials": (["--data", "{tmp}/good.csv", "--trials", "0"], "--trials must be a positive"),
    "zero workers": (["--data", "{tmp}/good.csv", "--workers", "0"], "--workers must be a positive"),
    "bad storage": (["--data", "{tmp}/good.csv", "--storage", "nosuchdb://x"], "storage URL"),
    "storage is a folder": (["--data", "{tmp}/good.csv", "--storage", "sqlite:///{tmp}"], "directory"),
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("bad")
    (tmp / "empty.csv").write_text("")
    (tmp / "header.csv").write_text("a,b,y\n")
    good = "a,b,y\n" + "".join(f"{i},{i % 3},{'yes' if i % 2 else 'no'}\n" for i in range(40))
    (tmp / "good.csv").write_text(good)
    (tmp / "ragged.csv").write_text("a,b,y\n1,2,yes\n3,4\n5,6,no\n")
    (tmp / "holes.csv").write_text("a,b,y\n" + "".join(f"{i},,{'yes' if i % 2 else 'no'}\n" for i in range(20)))
    (tmp / "oneclass.csv").write_text("a,b,y\n" + "".join(f"{i},{i},yes\n" for i in range(20)))
    return tmp


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_no_damage(case: str, bad_files: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    # an existing study in the store that bad input must leave alone
    assert main(["search", "--data", str(bad_files / "good.csv"), "--trials", "1", "--workers", "1",
                 "--epochs", "1", "--storage", storage, "--study", "keep", "--no-progress"]) == 0
    before = sqlite3.connect(tmp_path / "db.sqlite").execute("select * from trials").fetchall()
    capsys.readouterr()
    flags, expected = BAD[case]
    args = [f.format(tmp=bad_files) for f in flags]
    if "--storage" not in args:
        args += ["--storage", storage]
    code = main(["search", *args, "--trials", args[args.index("--trials") + 1] if "--trials" in args else "2",
                 "--epochs", "1", "--no-progress"] if "--trials" not in args else ["search", *args, "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert expected in err
    assert "Traceback" not in err
    after = sqlite3.connect(tmp_path / "db.sqlite").execute("select * from trials").fetchall()
    assert after == before


def test_unknown_flag_and_no_traceback_in_a_real_process(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "nasforge", "search", "--data", str(tmp_path / "x.csv")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "file not found" in done.stderr
    done = subprocess.run([sys.executable, "-m", "nasforge", "search", "--bogus"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr


def test_missing_study_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nasforge.storage.sql import Store

    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert main(["studies", "--storage", storage]) == 2
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "db.sqlite").exists(), "reading must not create a database"
    Store(storage)
    assert main(["trials", "--study", "nope", "--storage", storage]) == 2
    assert "no study named 'nope'" in capsys.readouterr().err
