"""A one-shot search as a study: the search phase and the retrained derived architecture are both trials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nasforge.core import registry
from nasforge.core.errors import ConfigError
from nasforge.core.types import TrialState
from nasforge.launch import build_config, run
from nasforge.oneshot.base import OneShotResult
from nasforge.storage.sql import Store

CALLS: list[int] = []


class RandomPick:
    """A test double of a one-shot method: it 'derives' a random architecture and reports two epochs."""

    name = "random_pick"

    def __init__(self, epochs: int = 2) -> None:
        if epochs < 1:
            raise ValueError("epochs must be >= 1")
        self.epochs = epochs

    def search(self, space: Any, dataset: Any, *, seed: int, device: Any, progress: Any) -> OneShotResult:
        CALLS.append(seed)
        rng = np.random.default_rng(seed)
        for epoch in range(1, self.epochs + 1):
            progress(epoch, {"train_loss": 1.0 / epoch, "valid_accuracy": 0.1 * epoch})
        ranked = [space.sample(rng) for _ in range(3)]
        return OneShotResult(ranked[0], {"valid_accuracy": 0.2, "peak_memory_mb": 10.0},
                             candidates=[(a, 0.2 - 0.01 * i) for i, a in enumerate(ranked)], state={"note": "x"})


@pytest.fixture
def fake_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.ONESHOT, "random_pick", f"{__name__}:RandomPick")
    CALLS.clear()


def config(tmp_path: Path, **extra: Any) -> Any:
    options: dict[str, Any] = dict(data="builtin:digits", space="nb201", strategy="random_pick", trials=1,
                                   storage=f"sqlite:///{tmp_path}/db.sqlite", steps=5, batch_size=64,
                                   space_options={"cells_per_stage": 1, "channels": 4}, progress=False)
    options.update(extra)
    return build_config(**options)


def test_search_phase_and_retrain_are_linked_trials(tmp_path: Path, fake_method: None) -> None:
    cfg = config(tmp_path)
    summary = run(cfg)
    store = Store(cfg.storage)
    study = store.require_study(cfg.study)
    searched, retrained = store.trials(study.id)
    assert summary.complete == 2 and CALLS == [0]
    assert searched.info["kind"] == "oneshot" and searched.score is None
    assert searched.metrics == {"oneshot_valid_accuracy": 0.2, "peak_memory_mb": 10.0,
                                "search_seconds": pytest.approx(searched.metrics["search_seconds"])}
    assert [c["score"] for c in searched.info["candidates"]] == pytest.approx([0.2, 0.19, 0.18])
    curve = store.intermediate(study.id, searched.number)
    assert (1, "train_loss", 1.0) in curve and (2, "valid_accuracy", 0.2) in curve
    assert retrained.state == TrialState.COMPLETE and retrained.parent == searched.number
    assert retrained.arch == searched.arch and retrained.info["kind"] == "retrain"
    assert retrained.score is not None and "valid_accuracy" in retrained.metrics and retrained.checkpoint


def test_resume_skips_a_finished_search_phase(tmp_path: Path, fake_method: None) -> None:
    cfg = config(tmp_path)
    run(cfg)
    run(cfg)
    store = Store(cfg.storage)
    assert CALLS == [0] and len(store.trials(store.require_study(cfg.study).id)) == 2


def test_bad_one_shot_settings_fail_before_a_study_exists(tmp_path: Path, fake_method: None) -> None:
    with pytest.raises(ConfigError, match="bad options for oneshot"):
        config(tmp_path, strategy_options={"epochs": 0})
    with pytest.raises(ConfigError, match="needs the train evaluator"):
        config(tmp_path, evaluator="synthetic", data=None)
    with pytest.raises(ConfigError, match="unknown strategy 'dartz'"):
        config(tmp_path, strategy="dartz")
    assert not (tmp_path / "db.sqlite").exists()


def test_darts_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`search --strategy darts --order 2`: the one-shot trial, then the derived cell retrained and listed."""
    from nasforge.cli.main import main

    storage = f"sqlite:///{tmp_path}/db.sqlite"
    code = main(["search", "--data", "builtin:digits", "--space", "nb201", "--strategy", "darts", "--order", "2",
                 "--strategy-option", "epochs=1", "--strategy-option", "max_steps=2",
                 "--strategy-option", "batch_size=16", "--strategy-option", "max_valid=32",
                 "--strategy-option", "supernet={channels: 2}", "--space-option", "cells_per_stage=1",
                 "--space-option", "channels=4", "--steps", "5", "--study", "d", "--storage", storage,
                 "--no-progress"])
    assert code == 0
    printed = capsys.readouterr()
    assert "darts epoch 1" in printed.err and "one-shot search, then its derived architecture" in printed.err
    assert "the one-shot trial and the retrained architecture" in printed.out
    store = Store(storage)
    searched, retrained = store.trials(store.require_study("d").id)
    assert searched.info["kind"] == "oneshot" and searched.info["state"]["order"] == 2
    assert "oneshot_alpha_entropy" in searched.metrics and "peak_memory_mb" in searched.metrics
    assert retrained.parent == searched.number and retrained.state == TrialState.COMPLETE
    assert main(["trials", "--study", "d", "--storage", storage, "--format", "json"]) == 0
    listed = capsys.readouterr().out
    assert f'"trial": {retrained.number}' in listed
    assert main(["search", "--data", "builtin:digits", "--strategy", "random", "--order", "2",
                 "--storage", storage]) == 2
    assert "--order is DARTS's option" in capsys.readouterr().err


def test_darts_resource_penalty_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--strategy-option resource_penalty=...` reaches DARTS; constraints on a one-shot search are refused in
    one line that names the penalty (for the methods that have one)."""
    from nasforge.cli.main import main

    storage = f"sqlite:///{tmp_path}/db.sqlite"
    base = ["search", "--data", "builtin:digits", "--space", "nb201", "--space-option", "cells_per_stage=1",
            "--space-option", "channels=4", "--steps", "5", "--storage", storage, "--no-progress"]
    code = main([*base, "--strategy", "darts", "--strategy-option", "epochs=1", "--strategy-option", "max_steps=2",
                 "--strategy-option", "batch_size=16", "--strategy-option", "max_valid=32",
                 "--strategy-option", "supernet={channels: 2}", "--strategy-option", "resource_penalty=1.0",
                 "--strategy-option", "resource=params", "--study", "p"])
    assert code == 0
    store = Store(storage)
    searched = store.trials(store.require_study("p").id)[0]
    assert searched.info["state"]["resource"]["resource"] == "params"
    assert 0.0 <= searched.metrics["oneshot_resource_cost"] <= 1.0
    capsys.readouterr()
    assert main([*base, "--strategy", "darts", "--max-params", "1e6", "--study", "q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "resource_penalty" in err[0] and "one-shot" in err[0]
    assert main([*base, "--strategy", "smash", "--max-params", "1e6", "--study", "r"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "resource_penalty" not in err[0]
