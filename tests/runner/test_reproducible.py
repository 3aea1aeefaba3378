"""Reproducible mode (issue 17 item 11): results told in trial order, so one seed gives one study for any
number of workers, and a run killed and resumed gives the study an uninterrupted one gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nasforge.core.errors import ConfigError
from nasforge.execution.local import make_backend
from nasforge.launch import build_config, run
from nasforge.runner import Runner
from nasforge.storage.sql import Store

TRIALS = 14


def config(tmp_path: Path, name: str, workers: int, **kw: Any) -> Any:
    options: dict[str, Any] = {
        "space": "nb201", "strategy": "evolution", "evaluator": "synthetic", "trials": TRIALS,
        "workers": workers, "study": "r", "storage": f"sqlite:///{tmp_path / (name + '.db')}",
        "root": str(tmp_path / name), "progress": False, "seed": 5, "reproducible": 3,
        # a small population: most proposals are children of results just told
        "strategy_options": {"population_size": 4, "sample_size": 2},
        "evaluator_options": {"noise": 0.05}}
    options.update(kw)
    return build_config(**options)


def study(cfg: Any) -> list[tuple[int, str, str, float | None]]:
    store = Store(cfg.storage)
    rows = store.trials(store.require_study("r").id)
    return [(t.number, t.key, t.state.value, t.score) for t in rows]


def test_the_same_seed_gives_the_same_study_for_any_worker_count(tmp_path: Path) -> None:
    one, three = config(tmp_path, "one", 1), config(tmp_path, "three", 3)
    run(one)
    run(three)
    assert len(study(one)) == TRIALS
    assert study(one) == study(three)


class _KillAfter:
    """A progress sink that stops the runner mid-search (as Ctrl-C would) after some updates."""

    def __init__(self, updates: int) -> None:
        self.left = updates

    def update(self, **_: Any) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt

    def close(self) -> None:
        pass


def test_a_killed_and_resumed_run_gives_the_uninterrupted_study(tmp_path: Path) -> None:
    whole, broken = config(tmp_path, "whole", 2), config(tmp_path, "broken", 2)
    run(whole)
    store = Store(broken.storage)
    backend = make_backend(2, None)
    with pytest.raises(KeyboardInterrupt):
        Runner(broken, store, backend, progress=_KillAfter(12)).run()
    backend.shutdown()
    assert 0 < len(study(broken)) < TRIALS
    run(broken)
    assert study(broken) == study(whole)


def test_reproducible_needs_a_positive_window(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--reproducible must be a positive whole number"):
        config(tmp_path, "bad", 1, reproducible=0)


def test_the_cli_flag_defaults_to_four_ahead_and_is_a_study_setting(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from nasforge.cli.main import main

    storage = f"sqlite:///{tmp_path / 'cli.db'}"
    base = ["search", "--space", "nb201", "--strategy", "evolution", "--evaluator", "synthetic", "--trials", "3",
            "--workers", "2", "--study", "c", "--storage", storage, "--no-progress"]
    assert main([*base, "--reproducible"]) == 0
    assert Store(storage).require_study("c").config["reproducible"] == 4
    assert main(base) == 2  # the same study without the mode: a different study
    assert "already exists with different settings (reproducible" in capsys.readouterr().err
