"""The adaptive schedule's decisions on hand-made validation predictions: each round builds on the best trial
so far, so weak early members are replaced (Model Search's prior generator; issue 22 item 5)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from nasforge.core.types import TrialState
from nasforge.ensemble.adaptive import best_so_far, grow
from nasforge.ensemble.combine import PROBABILITIES, combined, scores
from nasforge.ensemble.members import ENSEMBLE, kind_of
from nasforge.ensemble.schedule import make_schedule, next_step
from nasforge.storage.sql import TrialRow

Y = np.array([0, 1] * 5)


def _probs(right: range | list[int], confidence: float) -> np.ndarray:
    """Probability `confidence` on the true class in rows `right`, on the other class elsewhere."""
    p_true = np.array([confidence if i in right else 1 - confidence for i in range(len(Y))])
    out = np.empty((len(Y), 2))
    out[np.arange(len(Y)), Y] = p_true
    out[np.arange(len(Y)), 1 - Y] = 1 - p_true
    return out


class FakeMembers:
    """What the schedule reads from StudyMembers, over fixed validation probabilities."""

    task = "classification"
    y_valid = Y
    info = SimpleNamespace(objective="valid_accuracy", direction="maximize")

    def __init__(self) -> None:
        self.outs: dict[int, np.ndarray] = {}
        self.rows: list[TrialRow] = []

    def add(self, probs: np.ndarray | None = None, members: list[int] | None = None) -> TrialRow:
        number = len(self.rows)
        info: dict[str, Any] = {}
        if members is not None:
            probs = combined([self.outs[m] for m in members], [1.0] * len(members), self.task, PROBABILITIES)
            info = {"kind": ENSEMBLE, "members": members, "schedule": "adaptive", "round": 1}
        assert probs is not None
        self.outs[number] = probs
        metrics = scores(probs, Y, self.task, "valid")
        row = TrialRow(number=number, key=f"k{number}", arch={}, state=TrialState.COMPLETE,
                       score=metrics["valid_accuracy"], metrics=metrics, info=info, checkpoint="model.pt")
        self.rows.append(row)
        return row

    def searched(self, rows: list[TrialRow]) -> list[TrialRow]:
        usable = [r for r in rows if kind_of(r) == "search" and r.state == TrialState.COMPLETE]
        return sorted(usable, key=lambda r: (-(r.score or 0.0), r.number))

    def row(self, number: int) -> TrialRow:
        return self.rows[number]

    def terms(self, row: TrialRow, combine: str) -> np.ndarray:
        return self.outs[row.number]


def test_a_weak_early_ensemble_is_not_built_upon() -> None:
    fake = FakeMembers()
    fake.add(_probs(range(0, 6), 0.6))  # 0: 6/10
    fake.add(_probs(range(0, 5), 0.6))  # 1: 5/10
    weak = fake.add(members=[0, 1])     # 2: round 1's ensemble, weak
    fake.add(_probs(range(0, 9), 0.9))  # 3: 9/10, round 2
    fake.add(_probs(range(1, 10), 0.7))  # 4: 9/10, round 2
    assert weak.metrics["valid_accuracy"] < 0.9
    schedule = make_schedule("adaptive", {"every": 2, "width": 3})
    step = next_step(schedule, fake, fake.rows, total=10, skip=set())  # type: ignore[arg-type]
    assert step.members is not None and step.extra is not None
    # the prior is trial 3 (best so far), not the last ensemble: the early members 0 and 1 are gone
    assert step.extra["prior"] == 3 and step.extra["round"] == 2
    assert [r.number for r in step.members] == [3, 4]


def test_a_strong_ensemble_is_the_next_prior() -> None:
    fake = FakeMembers()
    fake.add(_probs(range(0, 8), 0.8))  # three 8/10 members, each wrong on other rows
    fake.add(_probs(range(2, 10), 0.8))
    fake.add(_probs([0, 1, 4, 5, 6, 7, 8, 9], 0.8))
    trio = fake.add(members=[0, 1, 2])  # 10/10 by majority
    assert trio.metrics["valid_accuracy"] > max(r.metrics["valid_accuracy"] for r in fake.rows[:3])
    assert best_so_far(fake, fake.rows) == trio


def test_a_full_prior_swaps_its_weakest_member_for_a_better_one() -> None:
    fake = FakeMembers()
    a = fake.add(_probs(range(0, 8), 0.8))  # 8/10
    b = fake.add(_probs(range(0, 6), 0.9))  # 6/10, confidently wrong on rows 6-9
    c = fake.add(_probs(range(2, 10), 0.7))  # 8/10, right where A is wrong
    grown = grow(fake, [a, b], [c], width=2, combine=PROBABILITIES)
    assert [r.number for r in grown] == [a.number, c.number]  # B replaced; A + B and B + C score 6/10
