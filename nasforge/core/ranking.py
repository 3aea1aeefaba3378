"""How complete trials are ranked everywhere a study's best trial is chosen (show, predict, export, pick, ensembles).

The study's objective (the trial's score) first; a tie goes to the lower validation loss, then to the lower
trial number. On a small validation split many trials tie on accuracy (every one of them 1.000 on a set of
ten cases), and picking the oldest of them is close to random, while the loss still tells the better fit
apart; the trials' best epoch is chosen the same way (evaluators/train.py). A trial without a stored
`valid_loss` ranks below those with one among equal scores.
"""

from __future__ import annotations

import math
from typing import Any


def valid_loss(trial: Any) -> float:
    """The trial's stored validation loss, or +inf when it has none (or a non-finite one)."""
    value = (getattr(trial, "metrics", None) or {}).get("valid_loss")
    if value is None:
        return math.inf
    try:
        loss = float(value)
    except (TypeError, ValueError):
        return math.inf
    return loss if math.isfinite(loss) else math.inf


def best_key(trial: Any) -> tuple[float, float, int]:
    """Sort key, larger is better: `max(trials, key=best_key)` is the best; `sorted(..., key=best_key,
    reverse=True)` ranks best first. Only for complete trials with a score."""
    return float(trial.score or 0.0), -valid_loss(trial), -int(trial.number)
