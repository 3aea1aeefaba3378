"""What a careful user types: numbers in every spelling, counts that must be whole, and bad options refused
before anything is stored (issue 17, items 1-3)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from nasforge.cli.main import build_parser, main
from nasforge.core.errors import ConfigError
from nasforge.core.numbers import as_count, as_real, load_yaml, parse_number


@pytest.mark.parametrize("text", ["1e-3", "1E-3", ".001", "0.001", "1.0e-3", "+1e-3", "10e-4"])
def test_every_spelling_of_a_small_number_is_a_number(text: str) -> None:
    assert load_yaml(text) == pytest.approx(0.001)
    assert parse_number(text) == pytest.approx(0.001)


def test_yaml_numbers_keep_their_kinds() -> None:
    assert load_yaml("1e9") == 1e9 and isinstance(load_yaml("1e9"), float)
    assert load_yaml("3") == 3 and isinstance(load_yaml("3"), int)
    assert load_yaml("{lr: 1E-3, depth: [1, 2e1]}") == {"lr": 0.001, "depth": [1, 20.0]}
    assert load_yaml("true") is True and load_yaml("cosine") == "cosine" and load_yaml("1e") == "1e"
    assert parse_number("many") is None and parse_number("1.2.3") is None


def test_counts_are_whole_and_never_bools() -> None:
    assert as_count("--trials", 3) == 3 and as_count("--trials", 1e3) == 1000 and as_count("--trials", "12") == 12
    for bad in ("many", 2.5, True, 0, -1, float("inf"), None, [3]):
        with pytest.raises(ConfigError, match="--trials must be a positive whole number"):
            as_count("--trials", bad)
    assert as_count("--retries", 0, minimum=0) == 0
    assert as_real("--trial-timeout", "1e2", low=0, low_open=True) == 100.0
    with pytest.raises(ConfigError, match="--trial-timeout must be a positive number"):
        as_real("--trial-timeout", 0, low=0, low_open=True)


def test_evaluator_option_and_config_file_read_1e_minus_3(tmp_path: Path) -> None:
    from nasforge.cli.commands import search_options
    from nasforge.launch import build_config

    args = build_parser().parse_args(["search", "--data", "builtin:iris", "--evaluator-option", "lr=1e-3",
                                      "--evaluator-option", "weight_decay=5E-4"])
    config = build_config(progress=False, **search_options(args))
    assert config.evaluator_config["lr"] == 0.001 and config.evaluator_config["weight_decay"] == 0.0005
    cfg = tmp_path / "search.yaml"
    cfg.write_text("data: builtin:iris\nevaluator_options:\n  lr: 1e-3\n")
    args = build_parser().parse_args(["search", "--config", str(cfg)])
    assert build_config(progress=False, **search_options(args)).evaluator_config["lr"] == 0.001


@pytest.mark.parametrize("line,flag", [("trials: many", "--trials"), ("trials: 2.5", "--trials"),
                                       ("trials: true", "--trials"), ("workers: many", "--workers"),
                                       ("epochs: many", "--epochs"), ("epochs: 1.5", "--epochs"),
                                       ("seed: x", "--seed"), ("retries: -1", "--retries"),
                                       ("batch_size: false", "--batch-size")])
def test_a_bad_count_in_a_config_file_is_one_line_and_exit_2(line: str, flag: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "search.yaml"
    db = tmp_path / "db.sqlite"
    cfg.write_text(f"data: builtin:iris\n{line}\nstorage: sqlite:///{db}\n")
    assert main(["search", "--config", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err and "Traceback" not in err, err
    assert not db.exists(), "a rejected config must not create the store"


def test_an_unknown_strategy_option_stores_nothing_and_the_fixed_command_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "db.sqlite"
    base = ["search", "--evaluator", "synthetic", "--strategy", "evolution", "--trials", "3", "--workers", "1",
            "--study", "s", "--storage", f"sqlite:///{db}", "--no-progress"]
    assert main([*base, "--strategy-option", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main([*base, "--strategy-option", "population_size=-4"]) == 2
    if db.exists():
        assert sqlite3.connect(db).execute("select count(*) from studies").fetchone()[0] == 0
    fixed = [*base, "--strategy-option", "population_size=4", "--strategy-option", "sample_size=2"]
    assert main(fixed) == 0  # the study name is still free
    assert sqlite3.connect(db).execute("select count(*) from trials").fetchone()[0] == 3


# ---- items 4-7: data values and files, output folders, devices ------------------------------------------

def _table(path: Path, odd: str, rows: int = 40) -> Path:
    lines = ["a,b,y"] + [f"{odd if i == 3 else i % 7},{(i * 3) % 5},{'yes' if i % 2 else 'no'}"
                         for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("odd", ["inf", "-inf", "1e308", "-1e308", "1e400", "3.5e38"])
def test_infinite_and_out_of_range_features_are_cleaned_as_missing(odd: str, tmp_path: Path) -> None:
    import warnings

    import numpy as np
    import pandas as pd

    from nasforge.data.tabular import TabularPreprocessor

    frame = pd.read_csv(_table(tmp_path / "t.csv", odd))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings on the way
        pre = TabularPreprocessor().fit(frame.drop(columns="y"))
        x = pre.transform(frame.drop(columns="y"))
    assert np.isfinite(x).all() and np.abs(x).max() < 10
    assert "a:missing" in pre.feature_names and x[3, pre.feature_names.index("a:missing")] == 1.0


def test_a_search_over_a_1e308_feature_completes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _table(tmp_path / "t.csv", "1e308")
    db = tmp_path / "db.sqlite"
    assert main(["search", "--data", str(data), "--label", "y", "--trials", "1", "--workers", "1", "--epochs", "2",
                 "--strategy", "random", "--storage", f"sqlite:///{db}", "--study", "s", "--no-progress",
                 "--no-baseline"]) == 0
    assert "1 complete, 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_csvs_are_read(encoding: str, tmp_path: Path) -> None:
    from nasforge.data.csv import read_text_file as read_text

    text = "a,b,y\n1,2,yes\n3,4,no\n"
    (tmp_path / "t.csv").write_bytes(text.encode(encoding))
    assert read_text(tmp_path / "t.csv").replace("\r\n", "\n") == text


def test_a_binary_file_and_a_npz_that_is_not_a_zip_say_what_they_are(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bin.csv").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "bad.npz").write_text("a,b\n1,2\n")
    np.save(tmp_path / "x.npy", np.zeros((4, 3)))
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    for data, space, expected in (("bin.csv", "dnn", "looks like a binary file"),
                                  ("bad.npz", "cnn", "not a NumPy .npz archive"),
                                  ("x.npy", "dnn", "a single .npy array carries no labels")):
        assert main(["search", "--data", str(tmp_path / data), "--space", space, "--storage", storage]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err and "pickle" not in err, err


def test_predict_out_into_a_missing_folder_is_one_line_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _table(tmp_path / "t.csv", "1")
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert main(["search", "--data", str(data), "--label", "y", "--trials", "1", "--workers", "1", "--epochs", "1",
                 "--strategy", "random", "--storage", storage, "--study", "s", "--no-progress",
                 "--no-baseline"]) == 0
    capsys.readouterr()
    out = tmp_path / "nope" / "p.csv"
    assert main(["predict", "--study", "s", "--storage", storage, "--data", str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"nasforge: error: --out {out}: folder {out.parent} does not exist"
    assert main(["predict", "--study", "s", "--storage", storage, "--data", str(data), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["show", "--study", "s", "--storage", storage, "--replay", str(out)]) == 2
    assert "--replay" in capsys.readouterr().err and "None" not in err


@pytest.mark.parametrize("device,expected", [("cuda", "CUDA is not available"), ("cuda:0", "CUDA is not available"),
                                             ("gpu", "is not a device"), ("xla", "trains on cpu, cuda or mps")])
def test_a_device_this_machine_lacks_is_refused_before_the_study(
        device: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    db = tmp_path / "db.sqlite"
    assert main(["search", "--data", "builtin:iris", "--device", device, "--trials", "1",
                 "--storage", f"sqlite:///{db}", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not db.exists()
