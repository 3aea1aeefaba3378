"""`--size K` is an exact member count for every method, and an ensemble below its best member is flagged
and ranked below it whichever way it was made (issue 22 item 5)."""

from __future__ import annotations

import numpy as np
import pytest

import nasforge
from nasforge.api import Study
from nasforge.cli.main import main
from nasforge.core.errors import ConfigError, UserError
from nasforge.data.builtin import write_csv
from nasforge.ensemble.combine import PROBABILITIES, member_terms
from nasforge.ensemble.members import StudyMembers
from nasforge.ensemble.selection import greedy_members, select


def _noisy_members(n: int, rows: int = 120, classes: int = 3, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=rows)
    terms = []
    for i in range(n):
        logits = rng.normal(size=(rows, classes)) * (1.0 + 0.4 * i)
        logits[np.arange(rows), y] += 1.2
        terms.append(member_terms(logits, "classification", PROBABILITIES))
    return terms, y


@pytest.mark.parametrize("method", ["average", "weighted", "greedy"])
def test_select_returns_exactly_size_distinct_members(method: str) -> None:
    terms, y = _noisy_members(6)
    for size in range(1, 7):
        sel = select(method, terms, y, "classification", PROBABILITIES, size)
        assert len(sel.chosen) == size, (method, size, sel.weights)
        assert sum(sel.weights) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="--size 7 needs at least 7"):
        select(method, terms, y, "classification", PROBABILITIES, 7)


def test_weighted_keeps_a_member_the_fit_would_drop() -> None:
    terms, y = _noisy_members(2)
    useless = np.full_like(terms[0], 1.0 / terms[0].shape[1])  # uniform probabilities: weight ~0 when fitted
    sel = select("weighted", [terms[0], terms[1], useless], y, "classification", PROBABILITIES, 3)
    assert sel.chosen == [0, 1, 2] and min(sel.weights) > 0


def test_greedy_members_weighs_up_with_replacement_and_keeps_the_count() -> None:
    terms, y = _noisy_members(5, seed=3)
    sel = greedy_members(terms, y, "classification", PROBABILITIES, 3)
    assert len(sel.chosen) == 3
    assert len(sel.history) == 6  # 2 * size steps
    assert all(sum(1 for c in counts if c) <= 3 for counts, _ in sel.history)
    # the weights are step counts over the steps taken: multiples of 1/n for one n <= 6
    assert any(all(abs(w * n - round(w * n)) < 1e-9 for w in sel.weights) for n in range(3, 7))


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    tmp = tmp_path_factory.mktemp("size")
    data = write_csv("wine", tmp / "wine.csv")
    return nasforge.search(data, label="target", trials=5, workers=1, epochs=4, test_fraction=0.25,
                           storage=f"sqlite:///{tmp / 'db.sqlite'}", study="wine", root=str(tmp), seed=1)


@pytest.mark.parametrize("method", ["average", "weighted", "greedy"])
def test_study_ensemble_has_size_members(study: Study, method: str) -> None:
    for size in (2, 4):
        row = study.ensemble(method=method, size=size, pool=5)
        assert len(row.info["members"]) == size and row.metrics["members"] == size


def test_size_errors_say_why(study: Study, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UserError, match="--size 6 asks for 6 distinct members, but the study has only 5"):
        study.ensemble(size=6)
    with pytest.raises(UserError, match="--pool 3 leaves only 3"):
        study.ensemble(size=4, pool=3)
    with pytest.raises(UserError, match="--trials gives only 2"):
        study.ensemble(size=3, trials=[0, 1, 1])
    storage = study.store.url
    assert main(["ensemble", "--study", "wine", "--storage", storage, "--size", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err
    before = len(study.trials)
    assert main(["ensemble", "--study", "wine", "--storage", storage, "--size", "9"]) == 2
    assert "only 5 candidate trials" in capsys.readouterr().err
    assert len(study.trials) == before  # nothing stored


def test_any_ensemble_below_its_best_member_is_flagged_and_ranked_below(study: Study) -> None:
    members = StudyMembers(study.store, study.info)
    searched = members.searched()
    best, worst = searched[0], searched[-1]
    assert (best.score or 0) > (worst.score or 0)
    row, created = members.add_ensemble([best, worst], [0.01, 0.99], PROBABILITIES, "weighted")
    assert created and row.info["worse_than_member"] == best.number
    board = study.leaderboard()
    order = [r["trial"] for r in board if r["rank"]]
    assert order.index(best.number) < order.index(row.number)
    top = study.best_trial
    assert top is not None and top.number != row.number
    good, _ = members.add_ensemble([best], [1.0], PROBABILITIES, "average")
    assert "worse_than_member" not in good.info  # as good as its member is not worse


def test_cli_notes_a_flagged_ensemble(study: Study, capsys: pytest.CaptureFixture[str]) -> None:
    searched = StudyMembers(study.store, study.info).searched()
    worst = [str(r.number) for r in searched[-2:]]
    best_first = ",".join([str(searched[0].number), *worst])
    code = main(["ensemble", "--study", "wine", "--storage", study.store.url, "--method", "average", "--size", "3",
                 "--trials", best_first])
    assert code == 0
    out = capsys.readouterr().out
    stored = study.trial(int(out.split("trial ")[-1].split(":")[0].split()[0]))
    assert stored.info["worse_than_member"] == searched[0].number  # averaging in the two worst members hurts
    assert f"worse on validation than its member #{searched[0].number} alone" in out
