"""`nasforge ensemble`: pick members from a study's best searched trials and store the ensemble as a trial."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nasforge.core.errors import ConfigError, UserError
from nasforge.core.types import JSONDict
from nasforge.ensemble.combine import PROBABILITIES, check_combine, rank, scores
from nasforge.ensemble.members import ENSEMBLE, StudyMembers, kind_of
from nasforge.ensemble.selection import METHODS, select
from nasforge.storage.sql import TrialRow

DEFAULT_METHOD = "greedy"
DEFAULT_SIZE = 5
DEFAULT_POOL = 10


def make_ensemble(members: StudyMembers, method: str = DEFAULT_METHOD, size: int = DEFAULT_SIZE,
                  pool: int = DEFAULT_POOL, combine: str = PROBABILITIES, trials: Sequence[int] | None = None,
                  extra: JSONDict | None = None) -> tuple[TrialRow, bool]:
    """Candidates: the `pool` best searched trials (or the given trial numbers, in that order);
    `average`/`weighted` use the best `size` of them, `greedy` takes `size` selection steps with replacement.
    Returns (the ensemble trial, whether it is new: an identical stored ensemble is reused)."""
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    check_combine(combine)
    if size < 1 or pool < 1:
        raise ConfigError(f"--size and --pool must be positive numbers (got {size}, {pool})")
    if trials:
        candidates = [members.row(int(n)) for n in trials]
        for r in candidates:
            if kind_of(r) == ENSEMBLE:
                raise ConfigError(f"trial {r.number} is an ensemble; members must be single models")
    else:
        candidates = members.searched()[:pool]
    if not candidates:
        raise UserError(f"study {members.info.name!r} has no complete searched trial with saved weights")
    terms = [members.terms(r, combine) for r in candidates]
    chosen = select(method, terms, members.y_valid, members.task, combine, size)
    picked = [(r, w) for r, w in zip(candidates, chosen.weights) if w > 0]
    flag = worse_than_best_member(members, [r for r, _ in picked], chosen.metrics, combine)
    return members.add_ensemble([r for r, _ in picked], [w for _, w in picked], combine, method,
                                {"pool": [r.number for r in candidates], **flag, **(extra or {})})


def worse_than_best_member(members: StudyMembers, picked: Sequence[TrialRow],
                           metrics: JSONDict, combine: str) -> JSONDict:
    """{"worse_than_member": N} when member N alone ranks above the ensemble on validation (accuracy, then
    log-loss; RMSE for regression): the ensemble is stored, flagged, and the member keeps the first rank."""
    by_number = {r.number: r for r in picked}
    best_number, best_rank = None, None
    for r in by_number.values():
        single = scores(member_terms_of(members, r, combine), members.y_valid, members.task, "valid")
        value = rank(single, members.task)
        if best_rank is None or value > best_rank:
            best_number, best_rank = r.number, value
    if best_rank is not None and rank(dict(metrics), members.task) < best_rank:
        return {"worse_than_member": best_number}
    return {}


def member_terms_of(members: StudyMembers, row: TrialRow, combine: str) -> Any:
    from nasforge.ensemble.combine import finish

    return finish(members.terms(row, combine), members.task, combine)
