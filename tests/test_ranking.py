"""The one ranking of complete trials (`core.ranking.best_key`): objective, then validation loss, then number."""

from __future__ import annotations

import math
from types import SimpleNamespace

from nasforge.core.ranking import best_key, valid_loss
from nasforge.core.types import TrialState
from nasforge.objectives.pick import pick_trial


def _trial(number: int, score: float, loss: float | None) -> SimpleNamespace:
    metrics = {"valid_accuracy": score} if loss is None else {"valid_accuracy": score, "valid_loss": loss}
    return SimpleNamespace(number=number, score=score, metrics=metrics, state=TrialState.COMPLETE, params=10)


def test_a_tie_on_the_objective_goes_to_the_lower_validation_loss_then_the_lower_number() -> None:
    trials = [_trial(0, 1.0, 0.30), _trial(1, 1.0, 0.05), _trial(2, 0.9, 0.01), _trial(3, 1.0, None),
              _trial(4, 1.0, 0.05)]
    ranked = sorted(trials, key=best_key, reverse=True)
    assert [t.number for t in ranked] == [1, 4, 0, 3, 2]  # no stored loss ranks below a stored one
    assert max(trials, key=best_key).number == 1
    assert pick_trial(trials, "params<=10").number == 1
    assert valid_loss(_trial(5, 1.0, math.nan)) == math.inf
