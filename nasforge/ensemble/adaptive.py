"""Model Search's adaptive ensembling: every round builds on the best trial so far, not on the last ensemble.

In Model Search each adaptive trial imports, frozen, the towers of the best trial so far (its prior, found
among all finished trials, ensembles included) and adds one new tower. Here the members are trained on
their own, so after each round of searched trials the round's ensemble is the prior's members plus the
round's trial that improves them most on validation; when the prior already has `width` members, the new
trial replaces the member whose removal costs least. A weak early ensemble is thus never built upon: once a
single model or another ensemble beats it on validation, that one is the prior and the weak members are gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nasforge.core.types import TrialState
from nasforge.ensemble.combine import combined, rank, scores
from nasforge.ensemble.members import ENSEMBLE, kind_of, standing
from nasforge.storage.sql import TrialRow


def best_so_far(members: Any, rows: Sequence[TrialRow]) -> TrialRow | None:
    """The best complete searched trial (with weights) or ensemble trial on validation; ties: lower number."""
    pool = list(members.searched(rows))
    pool += [r for r in rows if kind_of(r) == ENSEMBLE and r.state == TrialState.COMPLETE and r.score is not None]
    if not pool:
        return None
    info = members.info
    return max(pool, key=lambda r: (standing(r.metrics, members.task, info.objective, info.direction), -r.number))


def prior_members(members: Any, prior: TrialRow) -> list[TrialRow]:
    """An ensemble prior's member trials, or the single prior itself."""
    if kind_of(prior) == ENSEMBLE:
        return [members.row(int(m)) for m in prior.info["members"]]
    return [prior]


def ensemble_rank(members: Any, rows: Sequence[TrialRow], combine: str) -> tuple[float, float]:
    """Validation rank (accuracy, then log-loss; RMSE for regression) of the equal-weight ensemble of `rows`."""
    terms = [members.terms(r, combine) for r in rows]
    pred = combined(terms, [1.0] * len(rows), members.task, combine)
    return rank(scores(pred, members.y_valid, members.task, "valid"), members.task)


def grow(members: Any, prior: Sequence[TrialRow], candidates: Sequence[TrialRow], width: int,
         combine: str) -> list[TrialRow]:
    """The prior plus the candidate that makes the best ensemble on validation; at `width` members, that
    candidate replaces the prior member it improves on most. Candidates come best first, and ties go to the
    first option tried (the earliest candidate; with a full prior, dropping its last member first)."""
    taken = {r.number for r in prior}
    options: list[list[TrialRow]] = []
    for c in candidates:
        if c.number in taken:
            continue
        if len(prior) < width:
            options.append([*prior, c])
        else:
            options += [[*prior[:i], *prior[i + 1:], c] for i in reversed(range(len(prior)))]
    if not options:
        return list(prior)
    return max(options, key=lambda rows: ensemble_rank(members, rows, combine))
