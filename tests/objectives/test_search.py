"""Constraints and several objectives end to end with the instant synthetic evaluator (its `flops` are known
before training), NSGA-II as the strategy, and `trials --pareto` over the stored front."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasforge.api import Study
from nasforge.cli.main import main
from nasforge.core.types import TrialState
from nasforge.launch import build_config, run
from nasforge.objectives.pareto import dominates
from nasforge.storage.sql import Store

LIMIT = 1500.0


def test_constraint_prunes_before_training_and_front_is_stored(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    cfg = build_config(space="nb201", strategy="nsga2", evaluator="synthetic", trials=30, workers=1, study="mo",
                       storage=storage, root=str(tmp_path / "art"), progress=False,
                       objectives="valid_accuracy,flops", max_flops=LIMIT)
    store = Store(cfg.storage)
    summary = run(cfg, store)
    assert summary.complete == 30 and summary.failed == 0
    study = Study("mo", storage)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert len(complete) == 30 and summary.pruned == len(pruned) > 0
    assert all(t.metrics["flops"] <= LIMIT for t in complete)
    assert all("flops" in (t.error or "") for t in pruned)  # the reason is stored with the pruned trial
    assert all(t.metrics.get("flops", 0) > LIMIT for t in pruned)

    front = study.pareto_front()
    assert front and {t.number for t in front} <= {t.number for t in complete}
    points = {t.number: (t.metrics["valid_accuracy"], -t.metrics["flops"]) for t in complete}
    for member in front:  # nothing complete dominates a front member; every other trial is dominated
        assert not any(dominates(points[o], points[member.number]) for o in points)
    for other in set(points) - {t.number for t in front}:
        assert any(dominates(points[m.number], points[other]) or points[m.number] == points[other]
                   for m in front)

    assert main(["trials", "--study", "mo", "--storage", storage, "--pareto", "--format", "csv"]) == 0
    listed = capsys.readouterr().out.strip().splitlines()[1:]
    assert len(listed) == len(front)
