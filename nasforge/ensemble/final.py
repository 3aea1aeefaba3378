"""The ensemble a search ends with: Caruana's greedy selection over its best trials, kept only if it wins.

After the trials, the best `pool` searched trials (by validation) are candidates; greedy forward selection
with replacement takes `steps` steps and keeps the best ensemble of the sequence on validation (accuracy,
then log-loss; RMSE for regression). It is stored as an ensemble trial only when it has two or more
members and is strictly better than the best trial on the study's objective (validation accuracy, or
RMSE), not just on log-loss; so a stored final ensemble is always the study's best trial, the model
`predict` and `export` use by default, and otherwise the best trial stays the final model. Under a time
budget, candidates are read (their outputs computed once from their checkpoints) only while time is left.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from nasforge.ensemble.combine import PROBABILITIES
from nasforge.ensemble.members import StudyMembers
from nasforge.ensemble.selection import greedy
from nasforge.storage.sql import Store, StudyInfo, TrialRow

POOL = 16
STEPS = 25


def final_ensemble(store: Store, info: StudyInfo, pool: int = POOL, steps: int = STEPS,
                   budget: Any = None) -> TrialRow | None:
    """Store (or find) the search's final ensemble; None when no ensemble beats the best trial."""
    members = StudyMembers(store, info)
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
    objective = info.objective
    value = chosen.metrics.get(objective)
    best = candidates[0].metrics.get(objective)
    if len(picked) < 2 or value is None or best is None:
        return None
    if not (value > best if info.direction == "maximize" else value < best):
        return None  # better on log-loss at most: the best trial stays the final model
    row, _ = members.add_ensemble([r for r, _ in picked], [w for _, w in picked], PROBABILITIES, "greedy",
                                  {"final": True, "pool": [r.number for r in candidates[:len(terms)]],
                                   "steps": steps})
    return row
