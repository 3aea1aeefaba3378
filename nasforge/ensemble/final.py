"""The ensemble a search ends with: Caruana's greedy selection over its best trials, kept only if it wins.

After the trials, the best `pool` searched trials (ranked by `core.ranking.best_key`: validation objective,
ties to the lower validation loss) are candidates; greedy forward selection with replacement takes `steps`
steps and keeps the best ensemble of the sequence on validation (accuracy, then log-loss; RMSE for
regression). It is stored as an ensemble trial only when it has two or more members, is not worse than
any of its candidates on validation (objective, then accuracy and log-loss: `members.standing`), and ranks
above the best trial by `best_key`: strictly better on the study's objective, or equal on it with a lower
validation loss. The second case matters on small validation splits, where the best trials all reach
accuracy 1.000 and only the loss still separates them; averaging several of them is then the more
robust final model (InceptionTime's five-network ensemble is the same idea). So a stored final ensemble is
always the study's best trial, the model `predict` and `export` use by default, and otherwise the best
trial stays the final model. Under a time budget, candidates are read (their outputs computed once from
their checkpoints) only while time is left. Studies whose trials cannot be ensembled (one label per step)
end without one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from nasforge.core.errors import ConfigError
from nasforge.core.ranking import best_key, valid_loss
from nasforge.ensemble.combine import PROBABILITIES, finish, scores
from nasforge.ensemble.members import StudyMembers, standing
from nasforge.ensemble.selection import greedy
from nasforge.storage.sql import Store, StudyInfo, TrialRow

POOL = 16
STEPS = 25


def final_ensemble(store: Store, info: StudyInfo, pool: int = POOL, steps: int = STEPS,
                   budget: Any = None) -> TrialRow | None:
    """Store (or find) the search's final ensemble; None when no ensemble beats the best trial."""
    try:
        members = StudyMembers(store, info)
    except ConfigError as exc:  # one label per step, or a task ensembles do not combine
        logging.getLogger("nasforge.ensemble").info("no final ensemble: %s", exc)
        return None
    candidates = members.searched()[:pool]
    if len(candidates) < 2:
        return None
    terms: list[np.ndarray] = []
    slowest = 0.0
    for row in candidates:
        if budget is not None and terms and budget.left() < 2 * slowest + 1.0:
            break  # keep what we have: selection itself takes well under a second
        start = time.perf_counter()
        terms.append(members.terms(row, PROBABILITIES))
        slowest = max(slowest, time.perf_counter() - start)
    if len(terms) < 2:
        return None
    chosen = greedy(terms, members.y_valid, members.task, PROBABILITIES, steps)
    picked = [(r, w) for r, w in zip(candidates, chosen.weights) if w > 0]
    objective, direction = info.objective, info.direction
    value = chosen.metrics.get(objective)
    if len(picked) < 2 or value is None or candidates[0].metrics.get(objective) is None:
        return None
    mine = standing(chosen.metrics, members.task, objective, direction)
    singles = [standing(scores(finish(t, members.task, PROBABILITIES), members.y_valid, members.task, "valid"),
                        members.task, objective, direction) for t in terms]
    if not all(mine > s for s in singles):
        return None  # no better than one of its candidates alone: the best trial stays the final model
    score = float(value) if direction == "maximize" else -float(value)
    if (score, -valid_loss(chosen)) <= best_key(candidates[0])[:2]:
        return None  # would not rank above the best trial, so it could not be the study's model
    row, _ = members.add_ensemble([r for r, _ in picked], [w for _, w in picked], PROBABILITIES, "greedy",
                                  {"final": True, "pool": [r.number for r in candidates[:len(terms)]],
                                   "steps": steps})
    return row
