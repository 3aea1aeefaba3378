"""What a careful user types: numbers in every spelling, counts that must be whole, and bad options refused
before anything is stored (issue 17, items 1-3)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

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
    with pytest.raises(ConfigError, match="--trial-timeout must be a number > 0"):
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
