"""Model Search's ensembling schedules inside a tiny search: which trials are searched and which ensembled."""

from __future__ import annotations

from pathlib import Path

import pytest

import nasforge
from nasforge.cli.main import main
from nasforge.core.errors import ConfigError
from nasforge.ensemble.members import kind_of
from nasforge.ensemble.schedule import make_schedule


def _search(tmp_path: Path, name: str, trials: int, options: dict[str, object]) -> nasforge.Study:
    return nasforge.search("builtin:iris", trials=trials, workers=1, epochs=3, test_fraction=0.25,
                           storage=f"sqlite:///{tmp_path / 'db.sqlite'}", study=name, root=str(tmp_path),
                           ensemble_schedule=name, ensemble_options=options)


def _kinds(study: nasforge.Study) -> list[str]:
    return [kind_of(t) for t in study.trials]


def test_nonadaptive_pool_then_draws_from_the_best(tmp_path: Path) -> None:
    study = _search(tmp_path, "nonadaptive", 6, {"pool": 4, "width": 2, "candidates": 3})
    assert _kinds(study) == ["search"] * 4 + ["ensemble"] * 2
    searched = sorted((t for t in study.trials if kind_of(t) == "search"), key=lambda t: (-(t.score or 0), t.number))
    best3 = {t.number for t in searched[:3]}
    first, second = study.trials[4], study.trials[5]
    assert first.info["members"] == sorted(t.number for t in searched[:2])  # draw 0: the best width
    assert set(second.info["members"]) <= best3 and len(second.info["members"]) == 2
    assert first.info["members"] != second.info["members"]
    assert first.info["schedule"] == "nonadaptive"


def test_adaptive_grows_the_best_so_far_by_one_new_member_per_round(tmp_path: Path) -> None:
    study = _search(tmp_path, "adaptive", 8, {"every": 2, "width": 3})
    assert _kinds(study) == ["search", "search", "ensemble", "search", "search", "ensemble", "search", "search"]
    first, second = study.trials[2], study.trials[5]
    assert first.info["members"] == [0, 1]
    # the prior of round 2 is the best trial of 0-4 on validation (Model Search), not the last ensemble:
    # here trial 4 alone beats the first ensemble, whose weak member 0 (valid 0.33) is dropped
    earlier = [t for t in study.trials[:5] if t.score is not None]
    prior = max(earlier, key=lambda t: (t.score or 0.0, -t.metrics["valid_loss"], -t.number))
    assert second.info["prior"] == prior.number
    base = set(prior.info["members"]) if kind_of(prior) == "ensemble" else {prior.number}
    assert base < set(second.info["members"])
    (new,) = set(second.info["members"]) - base
    assert new in (3, 4)  # a member searched in this round
    assert 0 not in second.info["members"]


def test_intermixed_every_nth_trial_ensembles(tmp_path: Path) -> None:
    study = _search(tmp_path, "intermixed", 7, {"every": 3, "width": 2, "candidates": 3, "method": "greedy"})
    assert _kinds(study) == ["search", "search", "ensemble", "search", "search", "ensemble", "search"]
    assert all(n < 5 for n in study.trials[5].info["members"])
    again = _search(tmp_path, "intermixed", 7, {"every": 3, "width": 2, "candidates": 3, "method": "greedy"})
    assert len(again.trials) == 7  # resuming a finished scheduled search adds nothing


def test_schedule_options_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="unknown --ensemble-option"):
        make_schedule("adaptive", {"size": 3})
    with pytest.raises(ConfigError, match="positive integer"):
        make_schedule("nonadaptive", {"pool": 0})
    with pytest.raises(ConfigError, match="must be one of"):
        make_schedule("later")
    code = main(["search", "--data", "builtin:iris", "--trials", "2", "--storage", f"sqlite:///{tmp_path / 'x.db'}",
                 "--ensemble-option", "width=2"])
    assert code == 2 and "--ensemble-schedule" in capsys.readouterr().err
